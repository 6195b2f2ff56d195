"""The rules of the chronic-care API, independent of HTTP: who may do what, parsing readings, the
clinic worklist. Routes call these in a thread; the follow-up conversation can call them in-process.

    ChronicService(store, tz)
      .register(clinic_id, body: PatientIn, created_by) -> dict               (the patient, 201)
      .add_reading(patient_id, body: ReadingIn, recorded_by, lang, today=None) -> dict
      .overdue(clinic_id, today: date, lang) -> dict                        (the sorted worklist)
      .patient_view(patient_id, today, lang) -> dict
All raise ChronicError(status, code, zh, en)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.chronic.store import ChronicStore
from server.errors import REST_MESSAGES, FeatureApiError
from server.fever.auth import new_id
from tools.chronic import (
    ChronicPatient,
    Condition,
    FollowUpStatus,
    Reading,
    classify_reading,
    evaluate,
    load_plans,
    overdue_list,
    triage_for_reading,
    urgent_rules_met,
)
from tools.readings import (
    BloodPressure,
    Glucose,
    GlucoseContext,
    HbA1c,
    ReadingError,
    parse_blood_pressure,
    parse_glucose,
    parse_hba1c,
    validate_blood_pressure,
    validate_glucose,
    validate_hba1c,
)
from tools.triage_models import Lang

# code -> (zh, en); str.format fields from the caller.
MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "wrong_role": ("只有医护账号可以这样做。", "Only clinician accounts may do this."),
    "not_your_clinic": ("这位患者不属于您的机构。", "This patient belongs to another clinic."),
    "not_your_record": ("这份慢病档案不是您的。", "This chronic-care record is not yours."),
    "patient_not_found": ("找不到这位慢病患者。", "No such chronic-care patient."),
    "bad_date": (
        "日期“{value}”不对，请用 YYYY-MM-DD 格式。",
        'The date "{value}" is not valid; use YYYY-MM-DD.',
    ),
    "future_date": (
        "日期 {value} 在未来，请核对测量日期。",
        "The date {value} is in the future; please check when it was measured.",
    ),
    "missing_value": (
        "请填写 text（例如“150/95”），或填写数值字段。",
        'Give either text (for example "150/95") or the value fields.',
    ),
}


class ChronicError(FeatureApiError):
    messages = MESSAGES


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PatientIn(_Body):
    name: str = Field(min_length=1, max_length=60)
    conditions: list[Condition] = Field(min_length=1, max_length=2)
    last_visit: date | None = None
    family_doctor: str | None = Field(default=None, max_length=60)
    village: str | None = Field(default=None, max_length=60)
    linked_patient_id: str | None = Field(default=None, max_length=64, pattern=r"^[\w.-]+$")

    @field_validator("conditions")
    @classmethod
    def _unique(cls, value: list[Condition]) -> list[Condition]:
        return list(dict.fromkeys(value))


class ReadingIn(_Body):
    kind: Literal["bp", "glucose", "hba1c"]
    text: str | None = Field(default=None, max_length=200)  # "150/95", "高压150低压95", "140 mg/dL"
    systolic: float | None = None
    diastolic: float | None = None
    value: float | None = None  # glucose or HbA1c
    unit: Literal["mmHg", "kPa", "mmol/L", "mg/dL", "%"] | None = None
    context: GlucoseContext | None = None
    taken_on: date | None = None  # local date; default today
    symptoms: str | None = Field(default=None, max_length=500)  # given to the triage engine
    visit: bool = False  # taken at a follow-up visit: moves the last visit date


Parsed = BloodPressure | Glucose | HbA1c


def parse_reading(body: ReadingIn) -> Parsed:
    """Text or structured fields -> a checked value in canonical units; raises ReadingError/ChronicError."""
    if body.text:
        if body.kind == "bp":
            return parse_blood_pressure(body.text)
        if body.kind == "glucose":
            return parse_glucose(body.text, body.context)
        return parse_hba1c(body.text)
    if body.kind == "bp":
        if body.systolic is None and body.diastolic is None:
            raise ChronicError(422, "missing_value")
        if body.systolic is None or body.diastolic is None:
            shown = f"{body.systolic:g}/" if body.systolic is not None else f"/{body.diastolic:g}"
            return parse_blood_pressure(shown)  # raises incomplete_bp with the usual message
        if body.unit not in (None, "mmHg", "kPa"):
            raise ReadingError(
                "unknown_unit", "血压只能用 mmHg 或 kPa。", "Blood pressure takes mmHg or kPa."
            )
        return validate_blood_pressure(body.systolic, body.diastolic, body.unit)  # type: ignore[arg-type]
    if body.value is None:
        raise ChronicError(422, "missing_value")
    if body.kind == "glucose":
        if body.unit not in (None, "mmol/L", "mg/dL"):
            raise ReadingError(
                "unknown_unit", "血糖只能用 mmol/L 或 mg/dL。", "Glucose takes mmol/L or mg/dL."
            )
        return validate_glucose(body.value, body.unit, body.context or "random")  # type: ignore[arg-type]
    if body.unit not in (None, "%"):
        raise ReadingError("unknown_unit", "糖化血红蛋白用百分数（%）。", "HbA1c is given in percent.")
    return validate_hba1c(body.value)


def _reading(parsed: Parsed, taken_on: date) -> Reading:
    if isinstance(parsed, BloodPressure):
        return Reading(taken_on=taken_on, kind="bp", systolic=parsed.systolic, diastolic=parsed.diastolic)
    if isinstance(parsed, Glucose):
        return Reading(taken_on=taken_on, kind="glucose", glucose_mmol=parsed.mmol_l, context=parsed.context)
    return Reading(taken_on=taken_on, kind="hba1c", hba1c_percent=parsed.percent)


def _text(t: Any, lang: Lang) -> str:
    return t.zh if lang == "zh" else t.en


def status_view(patient: ChronicPatient, status: FollowUpStatus, lang: Lang) -> dict[str, Any]:
    names = load_plans().conditions
    return {
        "patient_id": patient.id,
        "name": patient.name,
        "conditions": patient.conditions,
        "condition_names": [_text(names[c].name, lang) for c in patient.conditions],
        "village": patient.village,
        "family_doctor": patient.family_doctor,
        "last_visit": patient.last_visit.isoformat() if patient.last_visit else None,
        "due_date": status.due_date.isoformat() if status.due_date else None,
        "overdue": status.overdue,
        "overdue_days": status.overdue_days,
        "controlled": status.controlled,
        "worsening": status.worsening,
        "urgent": status.urgent,
        "risk_score": status.risk_score,
        "reasons": [{"rule_id": r.rule_id, "code": r.code, "message": r.text(lang)} for r in status.reasons],
        "latest_reading": _latest_reading(patient),
    }


def _latest_reading(patient: ChronicPatient) -> dict[str, Any] | None:
    """The newest reading as the clinic list shows it (so the page needs no request per patient)."""
    if not patient.readings:
        return None
    latest = max(patient.readings, key=lambda r: r.taken_on)
    return {"display": latest.describe(), "taken_on": latest.taken_on.isoformat(), "kind": latest.kind}


class ChronicService:
    def __init__(self, store: ChronicStore, tz: ZoneInfo) -> None:
        self.store = store
        self.tz = tz

    def local_today(self) -> date:
        return datetime.now(self.tz).date()

    def _patient(self, patient_id: str) -> ChronicPatient:
        patient = self.store.patient(patient_id)
        if patient is None:
            raise ChronicError(404, "patient_not_found")
        return patient

    def check_clinic(self, patient_id: str, clinic_id: str) -> ChronicPatient:
        patient = self._patient(patient_id)
        if patient.clinic_id != clinic_id:
            raise ChronicError(403, "not_your_clinic")
        return patient

    def check_linked(self, patient_id: str, linked_patient_id: str) -> ChronicPatient:
        patient = self._patient(patient_id)
        if patient_id not in self.store.patients_linked_to(linked_patient_id):
            raise ChronicError(403, "not_your_record")
        return patient

    def register(self, clinic_id: str, body: PatientIn, created_by: str) -> dict[str, Any]:
        today = self.local_today()
        if body.last_visit is not None and body.last_visit > today:
            raise ChronicError(422, "future_date", value=body.last_visit.isoformat())
        patient_id = new_id()
        self.store.add_patient(
            {
                "patient_id": patient_id,
                "clinic_id": clinic_id,
                "name": body.name,
                "conditions": body.conditions,
                "last_visit": body.last_visit.isoformat() if body.last_visit else None,
                "family_doctor": body.family_doctor,
                "village": body.village,
                "linked_patient_id": body.linked_patient_id,
                "created_by": created_by,
                "created_at": _utc_now(),
            }
        )
        return {"patient_id": patient_id, "clinic_id": clinic_id, **body.model_dump(mode="json")}

    def add_reading(
        self, patient_id: str, body: ReadingIn, recorded_by: str, lang: Lang, today: date | None = None
    ) -> dict[str, Any]:
        """Parse, classify, store; the answer says whether the reading is urgent and what triage says."""
        today = today or self.local_today()
        taken_on = body.taken_on or today
        if taken_on > today:
            raise ChronicError(422, "future_date", value=taken_on.isoformat())
        try:
            parsed = parse_reading(body)
        except ReadingError as exc:
            raise ChronicError.from_domain(exc) from exc
        reading = _reading(parsed, taken_on)
        condition: Condition = "hypertension" if reading.kind == "bp" else "diabetes"
        klass = classify_reading(condition, reading)
        urgent_rules = urgent_rules_met(reading)
        triage = triage_for_reading(reading, body.symptoms or "", lang) if urgent_rules else None
        self.store.add_reading(
            {
                "reading_id": new_id(),
                "patient_id": patient_id,
                **{k: v for k, v in reading.model_dump(mode="json").items() if v is not None},
                "raw_text": body.text,
                "unit_given": parsed.unit_given,
                "converted": int(parsed.converted),
                "level": klass.level,
                "recorded_by": recorded_by,
                "recorded_at": _utc_now(),
            },
            visit=body.visit,
        )
        patient = self._patient(patient_id)
        status = evaluate(patient, today)
        return {
            "reading": {
                **reading.model_dump(mode="json", exclude_none=True),
                "unit_given": parsed.unit_given,
                "converted": parsed.converted,
                "display": reading.describe(),
                "warnings": [{"code": w.code, "message": w.message(lang)} for w in parsed.warnings],
            },
            "classification": {
                "level": klass.level,
                "rule_ids": klass.rule_ids,
                "reasons": [_text(r, lang) for r in klass.reasons],
            },
            "urgent": bool(urgent_rules),
            "urgent_rules": [
                {"rule_id": r.id, "message": _text(r.name, lang) if r.name else r.id} for r in urgent_rules
            ],
            "triage": triage.model_dump() if triage else None,
            "status": status_view(patient, status, lang),
        }

    def overdue(self, clinic_id: str, today: date, lang: Lang) -> dict[str, Any]:
        entries = overdue_list(self.store.clinic_patients(clinic_id), today)
        return {
            "clinic_id": clinic_id,
            "today": today.isoformat(),
            "count": len(entries),
            "patients": [status_view(e.patient, e.status, lang) for e in entries],
        }

    def patient_view(self, patient: ChronicPatient, today: date, lang: Lang) -> dict[str, Any]:
        view = status_view(patient, evaluate(patient, today), lang)
        view["readings"] = [
            {**r.model_dump(mode="json", exclude_none=True), "display": r.describe()}
            for r in patient.readings
        ]
        return view


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
