"""One turn of conversation, top to bottom: screen -> extract -> decide -> retrieve -> compose ->
check -> send.

The structured card is decided by rules and sent first; prose from the LLM streams after it.
Any LLM failure, timeout or unsafe draft falls back to the templated rules-only reply.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.agent.compose import card_messages, info_messages
from assistant.agent.extraction import llm_extract
from assistant.agent.fever_tools import fever_card, fever_text, make_dose_tool, make_fever_tool
from assistant.agent.lc_tools import make_guideline_tool, make_triage_tool
from assistant.agent.postcheck import check_draft
from assistant.agent.prompts import prompt_file
from assistant.agent.router import Route, Router
from assistant.llm.base import ChatMessage, LLMBackend, LLMError
from assistant.session import ConversationSession, TurnReply, merge_facts
from assistant.settings import Settings
from tools.fact_extraction import normalize_text
from tools.rulebook import load_rulebook
from tools.triage import _engine, detect_lang
from tools.triage_models import Facts, Level, TriageResult

log = logging.getLogger(__name__)

EventType = Literal["card", "token", "done", "error", "question", "session"]
_SENTENCE_END = re.compile(r"[。！？!?；;\n]|\.(\s|$)")
_CHUNK_CHARS = 24  # rules-only replies are sent in small pieces, like a stream


_NUMBER = (
    r"(\d|[一二两三四五六七八九十半]|"
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a few))"
)
_AGE_HINT = re.compile(_NUMBER + r"\s*(岁|个?月|周|天大|years?|months?|weeks?|yo\b|y/o)|old\b")
_TEMP_HINT = re.compile(r"(\d|[一二两三四五六七八九十])\s*(度|℃|°|degrees?|f\b|c\b)|烧到|发烧|fever|temp")


def _mentions_missing_number(text: str, facts: Facts) -> bool:
    """The message seems to state an age or temperature that the rules did not capture."""
    lowered = text.lower()
    missing_age = facts.age_months is None and _AGE_HINT.search(lowered) is not None
    missing_temp = facts.vitals.temperature_c is None and _TEMP_HINT.search(lowered) is not None
    return missing_age or missing_temp


def _denied_concepts(description: str) -> frozenset[str]:
    """Symptoms the patient explicitly denied in this conversation."""
    return frozenset(_engine().matcher.match(normalize_text(description)).negated())


class ChatEvent(BaseModel):
    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)


class TurnStats(BaseModel):
    card_latency_s: float | None = None
    first_token_s: float | None = None
    generation_s: float | None = None
    tokens: int = 0


def build_card(reply: TurnReply, result: TriageResult, lang: str) -> dict[str, Any]:
    advice = load_rulebook().advice
    return {
        "level": result.level.value,
        "level_label": result.level_label,
        "care_setting": result.care_setting.value,
        "care_setting_label": advice.care_settings[result.care_setting.value].get(lang),
        "departments": [d.model_dump() for d in result.departments],
        "red_flags": [f.model_dump(mode="json") for f in result.red_flags],
        "advice": result.advice,
        "citations": [c.model_dump() for c in result.citations],
        "question": reply.question.model_dump() if reply.question else None,
        "uncertain": result.uncertain,
        "warnings": [w.model_dump() for w in result.warnings],
        "disclaimer": result.disclaimer,
        "reply_kind": reply.kind,
        "engine_version": result.engine_version,
        "knowledge_version": result.knowledge_version,
    }


class ChatService:
    """Serves many sessions with one model: cards never wait; LLM work is serialised fairly
    (one worker thread, FIFO), because a llama.cpp instance is not thread-safe."""

    def __init__(
        self, settings: Settings, llm: LLMBackend, kb: Any | None, *, router: Router | None = None
    ) -> None:
        self.settings = settings
        self.llm = llm
        self.kb = kb
        self.router = router or Router()
        self.triage_tool = make_triage_tool()
        self.guideline_tool = make_guideline_tool(kb)
        self.fever_tool = make_fever_tool()
        self.dose_tool = make_dose_tool()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
        self.queue_depth = 0
        self.last_stats = TurnStats()
        self._warm_up()

    def _warm_up(self) -> None:
        """Load rules and compile patterns now, so the first user's card is not slow."""
        self.router.route("胸口痛 chest pain")
        self.triage_tool.invoke({"text": "头痛 headache"})

    @property
    def llm_ready(self) -> bool:
        return self.llm.available()

    async def turn(
        self, session: ConversationSession, text: str, *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[ChatEvent]:
        started = time.perf_counter()
        stats = TurnStats()
        self.last_stats = stats
        message_id = uuid.uuid4().hex[:12]
        lang = session.lang or detect_lang(text or "")
        route = self.router.route(text or "", pending_question=session.pending_question is not None)
        replies = prompt_file("agent_replies.yaml")

        if route is Route.greeting:
            async for event in self._send_text(message_id, replies["greeting"][lang], llm_used=False):
                yield event
            return
        if route is Route.guideline_question:
            async for event in self._answer_from_guidelines(message_id, text, lang, cancel):
                yield event
            return

        # --- screen + decide (rules): the card goes out before any model runs
        reply = await asyncio.to_thread(session.handle_user_message, text)  # keep the loop free
        if reply.kind == "error" or reply.result is None:
            yield ChatEvent(
                type="error", data={"code": reply.error_code or "invalid_input", "message": reply.text}
            )
            return
        lang = session.lang or lang
        card = build_card(reply, reply.result, lang)
        fever = None
        if reply.kind != "emergency":
            fever = fever_card(reply.result, session.description, lang, self.fever_tool, self.dose_tool)
            card["fever"] = fever
        fever_note = ("\n" + fever_text(fever, lang, card["level"])) if fever else ""
        stats.card_latency_s = time.perf_counter() - started
        yield ChatEvent(type="card", data={"message_id": message_id, "card": card})

        prefix = ""
        if route is Route.prescription_request:
            prefix = replies["prescription_refusal"][lang] + ("" if lang == "zh" else " ")

        if reply.kind == "emergency" or not self.llm.available():
            async for event in self._send_text(message_id, prefix + reply.text + fever_note, llm_used=False):
                yield event
            return

        # --- extract (LLM, constrained) what the rules missed; it may only raise urgency
        updated = await self._cross_check_with_llm_facts(session, text, lang, reply.result)
        if updated is not None:
            reply, card = updated, build_card(updated, updated.result, lang)  # type: ignore[arg-type]
            yield ChatEvent(type="card", data={"message_id": message_id, "card": card, "updated": True})
            if reply.kind == "emergency":
                async for event in self._send_text(message_id, prefix + reply.text, llm_used=False):
                    yield event
                return

        # --- retrieve + compose + check + send
        denied = _denied_concepts(session.description)
        hits = self._search(session.description[-400:] or text, lang)
        messages = card_messages(card, text, hits, lang)
        level = Level(card["level"])
        question = card["question"]["question"] if card["question"] else ""
        question_text = "\n".join(part for part in (fever_note.strip(), question) if part)
        async for event in self._stream_checked(
            message_id,
            messages,
            level,
            fallback=prefix + reply.text + fever_note,
            prefix=prefix,
            suffix=question_text,
            denied=denied,
            cancel=cancel,
            stats=stats,
            started=started,
        ):
            yield event

    # ------------------------------------------------------------------ helpers

    def _search(self, query: str, lang: str) -> list[dict[str, Any]]:
        try:
            return self.guideline_tool.invoke({"query": query[:1000], "lang": lang, "k": 2})
        except Exception:  # retrieval must never break a turn
            log.exception("guideline search failed")
            return []

    async def _cross_check_with_llm_facts(
        self, session: ConversationSession, text: str, lang: str, result: TriageResult
    ) -> TurnReply | None:
        """Ask the model for facts only when the rules left age/temperature unknown; re-run the
        triage tool with them and keep the result only if it is more urgent."""
        if not _mentions_missing_number(text, session.facts):
            return None  # nothing the rules could have missed: no model call, no delay
        loop = asyncio.get_running_loop()
        self.queue_depth += 1
        try:
            found: Facts = await loop.run_in_executor(self._executor, llm_extract, self.llm, text, lang)
        finally:
            self.queue_depth -= 1
        merged, _ = merge_facts(session.facts, found)
        if merged == session.facts:
            return None
        tool_args = {
            "text": session.description[:4000],
            "lang": lang,
            "age_months": merged.age_months,
            "sex": merged.sex,
            "pregnant": merged.pregnant,
            "duration_hours": merged.duration_hours,
            "temperature_c": merged.vitals.temperature_c,
        }
        try:
            checked = TriageResult.model_validate(self.triage_tool.invoke(tool_args))
        except Exception:  # invalid extracted values: keep the rules' decision
            log.info("LLM-extracted facts rejected", exc_info=True)
            return None
        if checked.level.rank <= result.level.rank:
            return None
        session.facts = merged
        return session.handle_reassess()

    async def _answer_from_guidelines(
        self, message_id: str, text: str, lang: str, cancel: asyncio.Event | None
    ) -> AsyncIterator[ChatEvent]:
        replies = prompt_file("agent_replies.yaml")
        hits = self._search(text, lang)
        citations = [{"doc_id": h["doc_id"], "section": h["section"]} for h in hits]
        yield ChatEvent(type="card", data={"message_id": message_id, "card": None, "citations": citations})
        if not hits:
            async for event in self._send_text(message_id, replies["info_not_found"][lang], llm_used=False):
                yield event
            return
        top = hits[0]
        fallback = replies["info_fallback"][lang].format(
            title=top["section_title"],
            excerpt=" ".join(top["text"].split())[:220],
            ref=f"{top['doc_id']}#{top['section']}",
        )
        if not self.llm.available():
            async for event in self._send_text(message_id, fallback, llm_used=False):
                yield event
            return
        async for event in self._stream_checked(
            message_id,
            info_messages(text, hits, lang),
            None,
            fallback=fallback,
            prefix="",
            suffix="",
            cancel=cancel,
            stats=self.last_stats,
            started=time.perf_counter(),
        ):
            yield event

    async def _send_text(
        self, message_id: str, text: str, *, llm_used: bool, **extra: Any
    ) -> AsyncIterator[ChatEvent]:
        for start in range(0, len(text), _CHUNK_CHARS):
            yield ChatEvent(
                type="token", data={"message_id": message_id, "text": text[start : start + _CHUNK_CHARS]}
            )
        yield ChatEvent(
            type="done", data={"message_id": message_id, "text": text, "llm_used": llm_used, **extra}
        )

    async def _stream_checked(
        self,
        message_id: str,
        messages: list[ChatMessage],
        level: Level | None,
        *,
        fallback: str,
        prefix: str,
        suffix: str,
        cancel: asyncio.Event | None,
        stats: TurnStats,
        started: float,
        denied: frozenset[str] = frozenset(),
    ) -> AsyncIterator[ChatEvent]:
        """Streams the model's reply sentence by sentence; each sentence is checked before it is
        released, so an unsafe draft is never shown — it is replaced by the templated reply."""
        sent = prefix
        if prefix:
            yield ChatEvent(type="token", data={"message_id": message_id, "text": prefix})
        buffer = ""
        reason: str | None = None
        gen_started = time.perf_counter()
        try:
            async for piece in self._llm_pieces(messages, cancel):
                if stats.first_token_s is None:
                    stats.first_token_s = time.perf_counter() - started
                    gen_started = time.perf_counter()  # decode rate excludes prompt processing
                stats.tokens += 1
                buffer += piece
                while (m := _SENTENCE_END.search(buffer)) is not None:
                    sentence, buffer = buffer[: m.end()], buffer[m.end() :]
                    verdict = check_draft(sentence, level, final=False, denied=denied)  # one sentence: O(n)
                    if not verdict.ok:
                        reason = verdict.reason
                        break
                    sent += sentence
                    yield ChatEvent(type="token", data={"message_id": message_id, "text": sentence})
                if reason:
                    break
        except LLMError as exc:
            reason = f"llm_{exc.code}" if getattr(exc, "code", None) else "llm_failed"
        except TimeoutError:
            reason = "llm_timeout"
        # pieces after the first one, over the time since the first one arrived
        stats.generation_s = time.perf_counter() - gen_started
        stats.tokens = max(stats.tokens - 1, 0)
        if cancel is not None and cancel.is_set():
            return
        if reason is None and buffer.strip():
            verdict = check_draft(buffer, level, final=False, denied=denied)
            if verdict.ok:
                sent += buffer
                yield ChatEvent(type="token", data={"message_id": message_id, "text": buffer})
            else:
                reason = verdict.reason
        if reason is None and len(sent.strip()) <= len(prefix.strip()):
            reason = "llm_empty"
        if reason is not None:
            log.info("LLM reply replaced (%s)", reason)
            yield ChatEvent(
                type="done",
                data={
                    "message_id": message_id,
                    "text": fallback,
                    "llm_used": False,
                    "replaced": True,
                    "reason": reason,
                },
            )
            return
        if suffix:
            joiner = "\n"
            sent += joiner + suffix
            yield ChatEvent(type="token", data={"message_id": message_id, "text": joiner + suffix})
        yield ChatEvent(
            type="done",
            data={
                "message_id": message_id,
                "text": sent,
                "llm_used": True,
                "tokens": stats.tokens,
                "generation_s": stats.generation_s,
            },
        )

    async def _llm_pieces(
        self, messages: list[ChatMessage], cancel: asyncio.Event | None
    ) -> AsyncIterator[str]:
        """Runs the blocking model stream on the single LLM worker thread and relays its pieces."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        max_tokens = self.settings.llm_max_reply_tokens

        def worker() -> None:
            try:
                for piece in self.llm.stream(messages, max_tokens=max_tokens, cancel=stop):
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
                    if stop.is_set():
                        break
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:  # relayed to the event loop, which falls back
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        self.queue_depth += 1
        future = loop.run_in_executor(self._executor, worker)
        deadline = time.monotonic() + self.settings.llm_timeout_s
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                getter = asyncio.ensure_future(queue.get())
                waiters: set[asyncio.Future[Any]] = {getter}
                cancel_wait = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
                if cancel_wait is not None:
                    waiters.add(cancel_wait)
                done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters - done:
                    waiter.cancel()
                if getter not in done:
                    if cancel_wait is not None and cancel_wait in done:
                        return
                    raise TimeoutError
                kind, value = getter.result()
                if kind == "piece":
                    yield value
                elif kind == "end":
                    return
                else:
                    raise value if isinstance(value, LLMError) else LLMError(str(value))
        finally:
            stop.set()  # the worker stops at its next piece; nothing keeps running for a gone client
            self.queue_depth -= 1
            future.add_done_callback(lambda f: f.exception())  # no "exception never retrieved" noise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
