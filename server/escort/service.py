"""The escort's rules on the server: who may see and advance which visit, which department exists,
queue numbers and waiting estimates, persistence, and pushing each step change to the patient.

The state machine and every text come from tools/visit_escort.py; this layer adds ownership
(a patient only sees their own visits), the department check, the per-(clinic, department, day)
queue counter, and notify(patient_id, "visit_step", {...}) after every accepted event.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from assistant.settings import Settings
from server.errors import REST_MESSAGES, FeatureApiError
from server.escort.store import EscortStore, StoredVisit, VersionConflict
from server.fever.auth import new_id
from tools.departments import load_catalogue
from tools.triage_models import Lang
from tools.visit_escort import (
    EscortError,
    StepsData,
    VisitState,
    allowed_events,
    guidance,
    load_steps,
    new_visit,
    plan,
    remaining_steps,
    transition,
)

log = logging.getLogger(__name__)

Notify = Callable[[str, str, dict[str, Any]], None]  # the server/notify.py signature
Clock = Callable[[], datetime]
# code -> (zh, en)
MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "visit_not_found": ("找不到这次就诊记录：{visit_id}。", "No such visit: {visit_id}."),
    "not_your_visit": (
        "这次就诊不是您的，不能查看或更新。",
        "This visit is not yours; you cannot view or update it.",
    ),
    "unknown_department": (
        "{clinic_id} 没有科室“{department_id}”，请选择一个存在的科室。",
        "{clinic_id} has no department '{department_id}'; choose an existing one.",
    ),
    "unknown_clinic": ("找不到这家医疗机构：{clinic_id}。", "Unknown clinic: {clinic_id}."),
    "exam_not_offered": (
        "{clinic_id} 不提供检查“{exam_id}”，请核对检查申请单。",
        "{clinic_id} does not offer the exam '{exam_id}'; check the exam request.",
    ),
    "visit_busy": (
        "这次就诊正在被另一台设备更新，请稍后再试。",
        "This visit is being updated from another device; please try again.",
    ),
}


class EscortApiError(FeatureApiError):
    """HTTP status, stable code and zh/en messages (from_domain carries a domain EscortError)."""

    messages = MESSAGES


def utc_now() -> datetime:
    return datetime.now(UTC)


class ClinicChecks:
    """What exists at a clinic. Departments must be in tools/data/departments.yaml and, when the
    clinic catalogue (tools/booking/catalogue.py) loads, offered by that clinic (its room_id is the
    consulting room); exams ordered must be offered by the clinic. Without a catalogue only the
    department list and the escort's own exam list (tools/data/visit_steps.yaml) are checked."""

    def __init__(self, clinics_dir: Path | None = None) -> None:
        self.clinics_dir = clinics_dir

    def _directory(self) -> Any | None:
        try:
            catalogue = importlib.import_module("tools.booking.catalogue")
            return catalogue.load_directory(self.clinics_dir)
        except ImportError:
            return None
        except Exception as exc:  # broken catalogue data: degrade to the department list
            log.warning("clinic catalogue unavailable (%s); checking departments only", exc)
            return None

    def department_room(self, clinic_id: str, department_id: str) -> str | None:
        """The consulting room's map node (None: "clinic_<department>"), or 422."""
        if department_id not in load_catalogue().departments:
            raise EscortApiError(422, "unknown_department", clinic_id=clinic_id, department_id=department_id)
        directory = self._directory()
        if directory is None:
            return None
        try:
            return str(directory.department(clinic_id, department_id).room_id)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code in ("unknown_clinic", "unknown_department"):
                raise EscortApiError(422, code, clinic_id=clinic_id, department_id=department_id) from exc
            raise

    def check_exams(self, clinic_id: str, exam_ids: list[str]) -> None:
        """422 exam_not_offered for an exam the clinic does not offer (when the catalogue knows)."""
        directory = self._directory()
        if directory is None or clinic_id not in directory.clinics:
            return
        offered = {exam.id for exam in directory.clinics[clinic_id].exams}
        for exam_id in exam_ids:
            if exam_id not in offered:
                raise EscortApiError(422, "exam_not_offered", clinic_id=clinic_id, exam_id=exam_id)


class EscortService:
    def __init__(
        self,
        store: EscortStore,
        *,
        notify: Notify | None = None,
        clock: Clock = utc_now,
        tz: ZoneInfo | None = None,
        checks: ClinicChecks | None = None,
        steps_data: StepsData | None = None,
    ) -> None:
        self.store = store
        self.notify = notify
        self.clock = clock
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.checks = checks or ClinicChecks()
        self.steps = steps_data or load_steps()

    # ---------------------------------------------------------------------------- commands

    def start_visit(
        self,
        patient_id: str,
        clinic_id: str,
        department_id: str,
        appointment_id: str | None = None,
        lang: Lang = "zh",
        *,
        view_lang: Lang | None = None,
    ) -> dict[str, Any]:
        room_id = self.checks.department_room(clinic_id, department_id)
        now = self._now()
        state = new_visit(
            "v-" + new_id(),
            patient_id,
            clinic_id,
            department_id,
            now,
            appointment_id=appointment_id,
            room_id=room_id,
            lang=lang,
        )
        self.store.create(state, now.astimezone(self.tz).date(), now)
        stored = self._load(patient_id, state.visit_id)
        self._push(stored, "start", now)
        return self._view(stored, now, view_lang)

    def advance(
        self,
        patient_id: str,
        visit_id: str,
        event: str,
        data: dict[str, Any] | None = None,
        *,
        view_lang: Lang | None = None,
    ) -> dict[str, Any]:
        for _attempt in range(3):
            stored = self._load(patient_id, visit_id)
            now = self._now()
            try:
                after = transition(stored.state, event, now, data, steps_data=self.steps)
            except EscortError as exc:
                raise EscortApiError.from_domain(exc) from exc
            if event == "consult_done":
                self.checks.check_exams(after.clinic_id, after.exams_pending)
            # The queue number is handed out when the patient checks in, on that local day.
            needs_number = stored.state.queue_number is None and event == "check_in"
            try:
                saved = self.store.save_transition(
                    stored,
                    after,
                    event,
                    data,
                    now,
                    queue_day=now.astimezone(self.tz).date() if needs_number else None,
                )
            except VersionConflict:
                continue  # someone advanced it meanwhile: read again and re-check the event
            self._push(saved, event, now)
            return self._view(saved, now, view_lang)
        raise EscortApiError(409, "visit_busy")

    # ---------------------------------------------------------------------------- queries

    def get(self, patient_id: str, visit_id: str, *, view_lang: Lang | None = None) -> dict[str, Any]:
        stored = self._load(patient_id, visit_id)
        view = self._view(stored, self._now(), view_lang)
        view["events"] = self.store.events(visit_id)
        return view

    def plan(self, patient_id: str, visit_id: str, *, view_lang: Lang | None = None) -> dict[str, Any]:
        stored = self._load(patient_id, visit_id)
        result = plan(
            stored.state,
            self._now(),
            view_lang,
            queue_ahead=self.store.queue_ahead(stored.state, stored.day),
            steps_data=self.steps,
        )
        return result.model_dump(mode="json")

    def list_visits(
        self, patient_id: str, *, active_only: bool = True, view_lang: Lang | None = None
    ) -> dict[str, Any]:
        """The patient's visits, newest first: a kiosk left mid-flow resumes from here."""
        now = self._now()
        visits = self.store.list_for_patient(patient_id, active_only=active_only)
        return {"visits": [self._view(v, now, view_lang) for v in visits]}

    # ---------------------------------------------------------------------------- helpers

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the escort clock must return timezone-aware times")
        return now

    def _load(self, patient_id: str, visit_id: str) -> StoredVisit:
        stored = self.store.get(visit_id)
        if stored is None:
            raise EscortApiError(404, "visit_not_found", visit_id=visit_id)
        if stored.state.patient_id != patient_id:
            raise EscortApiError(403, "not_your_visit")
        return stored

    def _guidance(self, stored: StoredVisit, now: datetime, lang: Lang | None) -> dict[str, Any]:
        ahead = self.store.queue_ahead(stored.state, stored.day)
        step_guidance = guidance(stored.state, now, lang, queue_ahead=ahead, steps_data=self.steps)
        return step_guidance.model_dump(mode="json")

    def _view(self, stored: StoredVisit, now: datetime, lang: Lang | None) -> dict[str, Any]:
        state: VisitState = stored.state
        return {
            "visit": state.model_dump(mode="json", exclude={"last_place"}),
            "guidance": self._guidance(stored, now, lang),
            "allowed_events": allowed_events(state),
            "remaining_steps": [s.value for s in remaining_steps(state)],
        }

    def _push(self, stored: StoredVisit, event: str, now: datetime) -> None:
        if self.notify is None:
            return
        payload = {
            "visit_id": stored.state.visit_id,
            "step": stored.state.step.value,
            "event": event,
            "guidance": self._guidance(stored, now, stored.state.lang),
        }
        try:
            self.notify(stored.state.patient_id, "visit_step", payload)
        except Exception:  # the step is saved; a failed push must not undo or fail the request
            log.exception("visit_step push for %s failed", stored.state.visit_id)


class EscortRuntime:
    """What the app lifespan starts and stops: the store (data_dir/escort.sqlite3) and the service.
    `notify` and `clock` are read at every call, so the app (or a test) may set them later."""

    def __init__(self, settings: Settings, notify: Notify | None = None) -> None:
        self.settings = settings
        self.notify = notify
        self.clock: Clock = utc_now
        self.db_path: Path = settings.data_dir / "escort.sqlite3"
        self.store: EscortStore | None = None
        self._service: EscortService | None = None

    @property
    def service(self) -> EscortService:
        if self._service is None:
            raise RuntimeError("the app lifespan starts the escort runtime")
        return self._service

    async def start(self) -> None:
        self.store = EscortStore(self.db_path)
        self._service = EscortService(
            self.store,
            notify=self._notify,
            clock=lambda: self.clock(),
            tz=self.settings.tz,
            checks=ClinicChecks(self.settings.clinics_dir),
        )

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store, self._service = None, None

    def _notify(self, patient_id: str, kind: str, payload: dict[str, Any]) -> None:
        if self.notify is not None:
            self.notify(patient_id, kind, payload)
