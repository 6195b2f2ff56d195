"""The chat's service desk: after "how urgent, and where?" comes "get me there".

Books a slot in the department triage chose (or the one the user names), shows the route to the room
and the steps of the visit; answers "where is ...", "what next", "cancel my booking", and
community-care / mobile-clinic questions. Deterministic and template-worded (prompts/desk.yaml), so it
works the same with the language model on or off.

Safety: a message that names a symptom never reaches the desk (the caller sends it to triage first),
and after an emergency assessment the desk does not book — it repeats "call 120" and offers the route
to the emergency department.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from assistant.agent.desk_tools import make_desk_tools
from assistant.agent.prompts import prompt_file
from assistant.session import EMERGENCY_LEVELS, ConversationSession
from tools import navigation
from tools.booking.catalogue import load_directory
from tools.booking.dates import find_when
from tools.departments import load_catalogue
from tools.fact_extraction import normalize_text
from tools.reminders import revisit_for

log = logging.getLogger(__name__)

DeskKind = Literal[
    "slots", "booked", "route", "steps", "cancelled", "mobile_clinic", "community", "notice", "error"
]
_ZH_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_WEEKDAYS = {"zh": "一二三四五六日", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}
_HALF_DAY = {"am": {"zh": "上午", "en": "morning"}, "pm": {"zh": "下午", "en": "afternoon"}}
ENTRANCE = "entrance_main"
EMERGENCY_ROOM = "emergency_room"
MAX_OFFER = 4
OFFER_SEARCH_DAYS = 14  # how far past a full session the desk looks for the nearest free one


class DeskReply(BaseModel):
    kind: DeskKind
    text: str
    data: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


@lru_cache(maxsize=1)
def _desk_file() -> dict[str, Any]:
    return prompt_file("desk.yaml")


@lru_cache(maxsize=1)
def _intent_patterns() -> list[tuple[str, re.Pattern[str]]]:
    return [(name, re.compile(pattern)) for name, pattern in _desk_file()["intents"].items()]


def _say(key: str, lang: str, **fields: Any) -> str:
    return str(_desk_file()["replies"][key][lang]).format(**fields)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Reads a field of a pydantic model or a dict (the ports return either)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _error_text(exc: Exception, lang: str) -> str:
    """The zh/en message of a domain or booking error (all have `message(lang)`); else its text."""
    message = getattr(exc, "message", None)
    return str(message(lang)) if callable(message) else str(exc)


class ServiceDesk:
    """Stateless: everything a conversation needs is kept in `session.desk` (persisted with it).

    Ports (duck-typed, all optional): `booking` (server.booking.service.BookingService), `patients`
    (server.patients.PatientDirectory), `escort` (server.escort.service.EscortService), `reminders`
    (server.reminders.ReminderService: revisit reminders after a booking). Without a port the desk
    says the service is unavailable instead of failing.

    The patient's bearer token (for /ws/patient pushes and the REST routes) is handed out once, as
    `patient_token` in the data of the reply whose turn created the patient; it is never kept in
    `session.desk`, which is persisted as plain JSON."""

    def __init__(
        self,
        *,
        clinic_id: str,
        tz: ZoneInfo,
        booking: Any | None = None,
        patients: Any | None = None,
        escort: Any | None = None,
        reminders: Any | None = None,
        clock: Callable[[], datetime] | None = None,
        start_place: str = ENTRANCE,
    ) -> None:
        self.clinic_id = clinic_id
        self.tz = tz
        self.booking = booking
        self.patients = patients
        self.escort = escort
        self.reminders = reminders
        self.clock = clock or (lambda: datetime.now(tz))
        self.start_place = start_place
        self.tools = make_desk_tools(booking, lambda: self.clock())

    # ------------------------------------------------------------------ entry points

    def intent(self, session: ConversationSession, text: str) -> str | None:
        norm = normalize_text(text).lower()
        if session.desk.get("offer") and _choice_number(norm):  # a later triage turn clears the offer
            return "choose"
        if re.search(_desk_file()["asks_advice"], norm):
            return None  # "when should I book my first check?" is a question for triage
        for name, pattern in _intent_patterns():
            if pattern.search(norm):
                return name
        if session.desk.get("want_booking") and self._department_in_text(norm):
            return "book"  # the answer to "which department?"
        return None

    def handle(self, session: ConversationSession, text: str, lang: str) -> DeskReply | None:
        """The desk's reply, or None when the message is not for the desk."""
        intent = self.intent(session, text)
        if intent is None:
            return None
        handler = getattr(self, f"_on_{intent}")
        reply: DeskReply = handler(session, text, lang)
        return reply

    # ------------------------------------------------------------------ booking

    def _on_book(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        if _after_emergency(session):
            route = self._route(EMERGENCY_ROOM, lang, step_free=False)
            body = _say("emergency_first", lang)
            return DeskReply(kind="notice", text=body, data={"call_120": True, "route": route})
        if self.booking is None:
            return DeskReply(kind="notice", text=_say("service_unavailable", lang))
        norm = normalize_text(text).lower()
        department = self._department_in_text(norm) or self._department_from_triage(session)
        if department is None:
            session.desk["want_booking"] = text[:200]  # its date ("明天上午") still counts after the answer
            return DeskReply(kind="notice", text=_say("which_department", lang))
        asked_before = str(session.desk.pop("want_booking", "") or "")
        try:
            when = self._when(text) or (self._when(asked_before) if asked_before else None)
        except Exception as exc:  # a malformed date: say what is wrong, keep the conversation
            return DeskReply(kind="error", text=_error_text(exc, lang), data={"code": _code(exc)})
        return self._offer(session, department, when, lang)

    def _offer(self, session: ConversationSession, department: str, when: Any, lang: str) -> DeskReply:
        day = _field(when, "date")
        half_day = _field(when, "half_day")
        try:
            slots = self._free_slots(department, day, half_day, limit=40)
            alternatives = not slots and (day is not None or half_day is not None)
            if alternatives:  # the asked-for session is full or closed: the nearest ones after it
                slots = self._nearest_after(department, day, half_day)
        except Exception as exc:
            return DeskReply(kind="error", text=_error_text(exc, lang), data={"code": _code(exc)})
        slots = _spread(slots)[:MAX_OFFER]
        clinic, dept_name = self._names(department, lang)
        when_text = _day_text(day, lang) + (_HALF_DAY[half_day][lang] if half_day else "")
        if not slots:
            body = _say("no_slots", lang, clinic=clinic, department=dept_name, when=when_text)
            session.desk.pop("offer", None)
            return DeskReply(kind="slots", text=body, data={"department_id": department, "options": []})
        options = []
        for n, slot in enumerate(slots, start=1):
            label = self._slot_label(slot, n, lang)
            options.append({"n": n, "slot_id": _field(slot, "slot_id"), "label": label})
        session.desk["offer"] = {"department_id": department, "slot_ids": [o["slot_id"] for o in options]}
        lines = []
        if alternatives:
            lines.append(_say("asked_full", lang, when=when_text or _say("asked_time", lang)))
        lines.append(_say("offer_head", lang, clinic=clinic, department=dept_name))
        lines += [o["label"] for o in options]
        lines.append(_say("offer_tail", lang))
        return DeskReply(
            kind="slots",
            text="\n".join(lines),
            data={"department_id": department, "options": options, "alternatives": alternatives},
        )

    def _nearest_after(self, department: str, day: Any, half_day: str | None) -> list[Any]:
        """Free slots from the asked day on (the afternoon of that day after a full morning, then
        the following days), within the booking window."""
        if day is None:
            return self._free_slots(department, None, None, limit=40)
        if half_day == "am":
            same_day = self._free_slots(department, day, "pm", limit=40)
            if same_day:
                return same_day
        for ahead in range(1, OFFER_SEARCH_DAYS + 1):
            try:
                found = self._free_slots(department, day + timedelta(days=ahead), None, limit=40)
            except Exception:  # past the booking window: nothing later to offer
                return []
            if found:
                return found
        return []

    def _free_slots(
        self, department: str, day: Any, half_day: str | None, *, limit: int = MAX_OFFER
    ) -> list[Any]:
        args = {"clinic_id": self.clinic_id, "department_id": department, "day": day, "half_day": half_day}
        return list(self.tools["find_slots"].invoke({**args, "limit": limit}))

    def _on_choose(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        offer = session.desk["offer"]
        n = _choice_number(normalize_text(text).lower()) or 0
        slot_ids: list[str] = offer["slot_ids"]
        if not 1 <= n <= len(slot_ids):
            return DeskReply(kind="error", text=_say("bad_choice", lang, max=len(slot_ids)))
        if self.booking is None:
            return DeskReply(kind="notice", text=_say("service_unavailable", lang))
        slot_id = slot_ids[n - 1]
        patient_id, new_token = self._patient(session, lang)
        token = {"patient_token": new_token} if new_token else {}  # once: the turn that created it
        try:
            key = f"chat:{session.session_id}:{slot_id}"  # a retried message books once
            appointment = self.tools["book_slot"].invoke(
                {"patient_id": patient_id, "slot_id": slot_id, "idempotency_key": key}
            )
        except Exception as exc:  # taken meanwhile, vanished, in the past: say so and offer again
            failed = _say("booking_failed", lang, reason=_error_text(exc, lang))
            again = self._offer(session, offer["department_id"], None, lang)
            error = {"code": _code(exc), "message": _error_text(exc, lang)}
            return DeskReply(
                kind="slots", text=failed + "\n" + again.text, data={**again.data, "error": error, **token}
            )
        session.desk.pop("offer", None)
        reply = self._booked(session, patient_id, offer["department_id"], appointment, lang)
        reply.data.update(token)
        return reply

    def _booked(
        self, session: ConversationSession, patient_id: str, department: str, appointment: Any, lang: str
    ) -> DeskReply:
        clinic, dept_name = self._names(department, lang)
        start = _as_local(_field(appointment, "start"), self.tz)
        room_id = self._room_of(department)
        appointment_id = str(_field(appointment, "appointment_id") or _field(appointment, "id"))
        session.desk["appointment"] = {
            "appointment_id": appointment_id,
            "department_id": department,
            "room_id": room_id,
            "start": start.isoformat() if start else None,
        }
        visit_id = self._start_visit(session, patient_id, department, appointment_id, lang)
        room_name = self._place_name(room_id, lang) if room_id else dept_name
        lines = [
            _say(
                "booked",
                lang,
                day=_day_text(start.date(), lang) if start else "",
                time=start.strftime("%H:%M") if start else "",
                clinic=clinic,
                department=dept_name,
                doctor=_doctor_name(appointment, lang),
                number=_field(appointment, "number", ""),
                appointment_id=appointment_id,
                room=room_name,
            )
        ]
        route = self._route(room_id, lang, step_free=False) if room_id else None
        if route:
            lines += [route["head"], *route["steps"]]
        steps = self._steps(session, lang) if visit_id else []
        if steps:
            lines.append(_say("steps_head", lang))
            lines += [f"{i}. {s['text']}" for i, s in enumerate(steps, start=1)]
        reminders = self._revisit_reminders(patient_id, start, department, room_id) if start else []
        if reminders:
            session.desk["appointment"]["reminder_ids"] = [r["reminder_id"] for r in reminders]
            times = ("、" if lang == "zh" else ", ").join(
                _when_text(_as_local(r["fire_at"], self.tz), lang) for r in reminders
            )
            lines.append(_say("reminders_set", lang, times=times))
        data = {
            "appointment": session.desk["appointment"],
            "visit_id": visit_id,
            "route": route,
            "steps": steps,
            "reminders": reminders,
        }
        return DeskReply(kind="booked", text="\n".join(lines), data=data)

    def _revisit_reminders(
        self, patient_id: str, start: datetime, department: str, room_id: str | None
    ) -> list[dict[str, Any]]:
        """The evening-before and 2-hours-before reminders of the booked visit: [{reminder_id,
        fire_at}] (fire_at local ISO). Empty without a reminders port, when both moments are already
        past, or when storing them fails: the booking stands either way."""
        if self.reminders is None:
            return []
        try:
            specs = revisit_for(
                patient_id,
                start,
                self.clock(),
                place_zh=self._place_name(room_id, "zh") if room_id else self._names(department, "zh")[1],
                place_en=self._place_name(room_id, "en") if room_id else self._names(department, "en")[1],
                tz=self.tz.key,
            )
            views = self.reminders.create_many(specs) if specs else []
        except Exception:
            log.exception("creating the revisit reminders failed")
            return []
        out = []
        for spec, view in zip(specs, views, strict=False):
            fire_at = _as_local(_field(view, "next_fire_at") or spec.local_first_at(), self.tz)
            fire_text = fire_at.isoformat() if fire_at else None
            out.append({"reminder_id": str(_field(view, "reminder_id")), "fire_at": fire_text})
        return out

    def _on_cancel(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        booked = session.desk.get("appointment")
        if not booked or self.booking is None:
            return DeskReply(kind="notice", text=_say("nothing_to_cancel", lang))
        try:
            self.tools["cancel_booking"].invoke(
                {"patient_id": session.desk["patient_id"], "appointment_id": booked["appointment_id"]}
            )
        except Exception as exc:
            return DeskReply(kind="error", text=_error_text(exc, lang), data={"code": _code(exc)})
        self._stop_reminders(session.desk["patient_id"], booked.get("reminder_ids") or [])
        session.desk.pop("appointment", None)
        session.desk.pop("visit_id", None)
        body = _say("cancelled", lang, appointment_id=booked["appointment_id"])
        return DeskReply(kind="cancelled", text=body, data={"appointment_id": booked["appointment_id"]})

    # ------------------------------------------------------------------ routes and steps

    def _on_route(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        norm = normalize_text(text).lower()
        target = self._place_in_text(norm) or self._room_for_conversation(session)
        if target is None:
            return DeskReply(kind="error", text=_say("route_unknown", lang), data={"code": "unknown_place"})
        step_free = re.search(_desk_file()["step_free"], norm) is not None
        route = self._route(target, lang, step_free=step_free)
        if route is None or "error" in route:
            message = route["error"]["message"] if route else _say("route_unknown", lang)
            return DeskReply(kind="error", text=message, data=route or {})
        body = "\n".join([route["head"], *route["steps"]])
        return DeskReply(kind="route", text=body, data={"route": route})

    def _on_next_steps(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        steps = self._steps(session, lang)
        if not steps:
            return DeskReply(kind="notice", text=_say("steps_none", lang))
        lines = [_say("steps_head", lang)] + [f"{i}. {s['text']}" for i, s in enumerate(steps, start=1)]
        return DeskReply(kind="steps", text="\n".join(lines), data={"steps": steps})

    # ------------------------------------------------------------------ community care

    def _on_mobile_clinic(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        try:
            visit = self.tools["next_mobile_clinic"].invoke({"area": text[:200]})
        except Exception as exc:
            return DeskReply(kind="notice", text=_say("area_unknown", lang), data={"code": _code(exc)})
        body = _say(
            "mobile_next",
            lang,
            area=_text(_field(visit, "area_name"), lang) or _text(_field(visit, "area"), lang),
            when=_when_text(_as_local(_field(visit, "start"), self.tz), lang),
            place=_text(_field(visit, "place"), lang),
            team=_text(_field(visit, "team"), lang),
            offer=_text(_field(visit, "offers"), lang),
        )
        return DeskReply(kind="mobile_clinic", text=body.strip(), data={"visit": _jsonable(visit)})

    def _on_community(self, session: ConversationSession, text: str, lang: str) -> DeskReply:
        try:
            found = self.tools["nearest_primary_care"].invoke({"area": text[:200]})
            area, services = found["area"], found["services"][:3]
        except Exception as exc:
            return DeskReply(kind="notice", text=_say("area_unknown", lang), data={"code": _code(exc)})
        lines = [_say("community_head", lang, area=_text(_field(area, "name"), lang))]
        for i, service in enumerate(services, start=1):
            name = _text(_field(service, "name"), lang)
            km = _field(service, "distance_km")
            phone = _field(service, "phone") or ""
            where = f"{km:.1f} km" if isinstance(km, int | float) else ""
            lines.append(f"{i}. {name} {where} {phone}".rstrip())
        return DeskReply(
            kind="community", text="\n".join(lines), data={"services": [_jsonable(s) for s in services]}
        )

    # ------------------------------------------------------------------ helpers

    def _when(self, text: str) -> Any:
        return find_when(text, self.clock())

    def _patient(self, session: ConversationSession, lang: str) -> tuple[str, str | None]:
        """(patient id, token when the patient was created just now, else None). Only the id is
        kept in the session; the caller hands the token to the client once."""
        patient_id = session.desk.get("patient_id")
        if patient_id:
            return str(patient_id), None
        token: str | None = None
        if self.patients is None:
            patient_id = f"chat-{session.session_id}"
        else:
            patient_id, token = self.patients.create(lang=lang)
        session.desk["patient_id"] = patient_id
        return str(patient_id), token

    def _stop_reminders(self, patient_id: str, reminder_ids: list[str]) -> None:
        """A cancelled booking must not remind anyone; a failure is logged, the cancel stands."""
        if self.reminders is None:
            return
        for reminder_id in reminder_ids:
            try:
                self.reminders.stop(patient_id, reminder_id)
            except Exception:
                log.exception("stopping reminder %s failed", reminder_id)

    def _start_visit(
        self, session: ConversationSession, patient_id: str, department: str, appointment_id: str, lang: str
    ) -> str | None:
        if self.escort is None:
            return None
        try:
            view = self.escort.start_visit(
                patient_id, self.clinic_id, department, appointment_id=appointment_id, lang=lang
            )
        except Exception:  # the booking stands even if the escort cannot start
            log.exception("starting the visit escort failed")
            return None
        visit_id = _field(_field(view, "visit", {}), "visit_id")
        session.desk["visit_id"] = visit_id
        return str(visit_id) if visit_id else None

    def _steps(self, session: ConversationSession, lang: str) -> list[dict[str, Any]]:
        visit_id = session.desk.get("visit_id")
        if not visit_id or self.escort is None:
            return []
        try:
            plan = self.escort.plan(session.desk["patient_id"], visit_id, view_lang=lang)
        except Exception:
            log.exception("reading the visit plan failed")
            return []
        steps = []
        for index, step in enumerate(_field(plan, "steps", [])):
            if index == 0:  # the current step: what to do now, not its name ("挂号" is already done)
                steps.append({"step": _field(step, "step"), "text": str(_field(step, "what_next"))})
                continue
            where = _field(_field(step, "where", {}), "name") or ""
            minutes = _field(step, "how_long")
            text = str(_field(step, "title") or _field(step, "step"))
            if where:
                text += f"（{where}）" if lang == "zh" else f" ({where})"
            if minutes:
                text += f"，约{minutes}分钟" if lang == "zh" else f", ~{minutes} min"
            if _field(step, "maybe"):
                text += "（如需要）" if lang == "zh" else " (if needed)"
            steps.append({"step": _field(step, "step"), "text": text, "detail": _jsonable(step)})
        return steps

    def _route(self, target: str, lang: str, *, step_free: bool) -> dict[str, Any] | None:
        args = {"map_id": self._map_id(), "start": self.start_place, "to": target, "step_free": step_free}
        try:
            plan = self.tools["route"].invoke(args)
        except Exception as exc:
            return {"error": {"code": _code(exc), "message": _error_text(exc, lang)}}
        minutes = max(1, round(float(_field(plan, "seconds", 60)) / 60))
        metres = round(float(_field(plan, "metres", 0)))
        steps = [
            f"{i}. {_field(s, 'text_zh') if lang == 'zh' else _field(s, 'text_en')}"
            for i, s in enumerate(_field(plan, "steps", []), start=1)
        ]
        head = _say(
            "route_head",
            lang,
            start=self._place_name(self.start_place, lang),
            end=self._place_name(target, lang),
            minutes=minutes,
            metres=metres,
            step_free=_say("step_free_note", lang) if step_free else "",
        )
        flag = str(step_free).lower()
        params = {"map_id": self._map_id(), "from": self.start_place, "to": target, "step_free": flag}
        query = urlencode(params)
        return {
            "from": self.start_place,
            "to": target,
            "minutes": minutes,
            "metres": metres,
            "step_free": step_free,
            "head": head,
            "steps": steps,
            "floorplan_url": f"/api/navigation/floorplan.svg?{query}&lang={lang}",
        }

    def _map_id(self) -> str:
        clinic = load_directory().get(self.clinic_id)
        return clinic.map_id or self.clinic_id

    def _names(self, department: str, lang: str) -> tuple[str, str]:
        directory = load_directory()
        clinic = directory.get(self.clinic_id)
        try:
            dept_name = directory.department(self.clinic_id, department).name.get(lang)
        except Exception:
            dept_name = department
        return clinic.name.get(lang), dept_name

    def _room_of(self, department: str) -> str | None:
        try:
            return load_directory().department(self.clinic_id, department).room_id
        except Exception:
            return None

    def _place_name(self, node_id: str, lang: str) -> str:
        try:
            node = navigation.load_map(self._map_id()).nodes[node_id]
            return str(_text(_field(node, "name"), lang) or node_id)
        except Exception:
            return node_id

    def _place_in_text(self, norm: str) -> str | None:
        try:
            return navigation.resolve_place(navigation.load_map(self._map_id()), norm)
        except Exception:
            return None

    def _room_for_conversation(self, session: ConversationSession) -> str | None:
        """"Where should I go?" with no place named: the booked room, else the room of the department
        triage chose (the emergency department after an emergency assessment)."""
        booked = session.desk.get("appointment")
        if booked and booked.get("room_id"):
            return str(booked["room_id"])
        if _after_emergency(session):
            return EMERGENCY_ROOM
        department = self._department_from_triage(session)
        return self._room_of(department) if department else None

    def _department_in_text(self, norm: str) -> str | None:
        """The clinic's department the text names (longest name wins: 小儿外科 over 外科)."""
        try:
            names = _clinic_department_names(self.clinic_id)
        except Exception:
            return None
        best: tuple[int, str] | None = None
        for name, dept_id in names:
            if _names_in(name, norm) and (best is None or len(name) > best[0]):
                best = (len(name), dept_id)
        return best[1] if best else None

    def _department_from_triage(self, session: ConversationSession) -> str | None:
        """The first department of the latest assessment that this clinic books."""
        result = session.last_result
        if result is None:
            return None
        try:
            bookable = {d.id for d in load_directory().get(self.clinic_id).departments}
        except Exception:
            return None
        for choice in result.departments:
            dept = choice.id
            if dept.startswith("ped_") or dept in {"neonatology", "child_health"}:
                dept = "pediatrics"
            if dept in bookable:
                return dept
        return "general_practice" if "general_practice" in bookable else None

    def _slot_label(self, slot: Any, n: int, lang: str) -> str:
        start = _as_local(_field(slot, "start"), self.tz)
        half_day = _field(slot, "half_day") or ("am" if start and start.hour < 12 else "pm")
        return _say(
            "offer_line",
            lang,
            n=n,
            day=_day_text(start.date(), lang) if start else "",
            half_day=_HALF_DAY[half_day][lang],
            time=start.strftime("%H:%M") if start else "",
            doctor=_doctor_name(slot, lang),
            number=_field(slot, "number", ""),
        )


# ---------------------------------------------------------------------- small pure helpers


def _after_emergency(session: ConversationSession) -> bool:
    result = session.last_result
    return result is not None and result.level in EMERGENCY_LEVELS


def _spread(slots: list[Any]) -> list[Any]:
    """First free number of each doctor's session first, so the offer shows real choices
    (different times and doctors) rather than four neighbouring numbers."""
    firsts, rest, seen = [], [], set()
    for slot in slots:
        key = (str(_field(slot, "start"))[:10], _field(slot, "half_day"), _field(slot, "doctor_id"))
        (rest if key in seen else firsts).append(slot)
        seen.add(key)
    return firsts + rest


def _choice_number(norm: str) -> int | None:
    match = re.match(_desk_file()["choice"], norm)
    if match:
        raw = match.group(2)
        return _ZH_DIGITS.get(raw) or int(raw)
    for word, n in _desk_file()["ordinal_en"].items():
        if re.fullmatch(rf"\s*(the )?{word}( one| slot)?\s*[.!]?\s*", norm):
            return int(n)
    return None


@lru_cache(maxsize=16)
def _clinic_department_names(clinic_id: str) -> tuple[tuple[str, str], ...]:
    """(name, department id) for every bookable department of the clinic: the clinic's names plus
    what people call it (departments.yaml aliases). Built once per clinic, read on every message."""
    catalogue = load_catalogue()
    pairs: list[tuple[str, str]] = []
    for dept in load_directory().get(clinic_id).departments:
        names = [dept.name.zh, dept.name.en]
        if len(dept.name.zh) >= 3 and dept.name.zh.endswith("科"):
            names.append(dept.name.zh[:-1])  # 皮肤科 -> 皮肤
        known = catalogue.departments.get(dept.id)
        if known is not None:
            names += [known.zh, known.en, *known.aliases]
        pairs += [(name.lower(), dept.id) for name in names if name]
    return tuple(pairs)


def _names_in(name: str, norm: str) -> bool:
    """Latin names must stand alone ("ent" is not in "appointment"); Chinese ones may sit anywhere."""
    if name.isascii():
        return re.search(rf"(?<![a-z]){re.escape(name)}(?![a-z])", norm) is not None
    return name in norm


def _code(exc: Exception) -> str:
    return str(getattr(exc, "code", None) or type(exc).__name__)


def _text(value: Any, lang: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("zh") or "")
    getter = getattr(value, "get", None)
    return str(getter(lang)) if callable(getter) else str(value)


def _as_local(value: Any, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)


def _day_text(day: Any, lang: str) -> str:
    if day is None:
        return ""
    weekday = day.weekday()
    if lang == "zh":
        return f"{day.month}月{day.day}日（周{_WEEKDAYS['zh'][weekday]}）"
    return f"{_WEEKDAYS['en'][weekday]} {day.day} {day.strftime('%b')}"


def _when_text(moment: datetime | None, lang: str) -> str:
    if moment is None:
        return ""
    return f"{_day_text(moment.date(), lang)} {moment.strftime('%H:%M')}"


def _doctor_name(obj: Any, lang: str) -> str:
    name = _field(obj, "doctor_name") or _field(obj, "doctor")
    return _text(name, lang)


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj
