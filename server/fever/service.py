"""The fever diary's rules: who may see and write what, input checks, grading after every entry,
colour changes, alerts and reminders, forms and callbacks.

Synchronous (SQLite and the deterministic graders): routes and the websocket call it in a thread.
Methods that change something return an Outcome: the response data plus the Events to push over
/ws/fever, which the caller publishes on the event loop. The clock is injectable (tests move time).

Grading: after every reading, dose, symptom or profile change the diary is turned back into a
tools.fever.FeverInput — age from the birth date, the last `history_days` of readings (each flagged
antipyretic_given when a dose was logged in the `antipyretic_window_h` before it), the symptoms of the
last `symptom_window_h` joined, the conditions — and graded; a colour change is stored, a change to
red pushes an alert at once, and re-measure reminders are planned from the new grade.
"""

from __future__ import annotations

import hmac
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from server.fever import auth
from server.fever.errors import FeverError, wrong_role
from server.fever.forms import Diary, age_months, age_text, build_form, fhir_bundle
from server.fever.models import (
    AccountIn,
    BleIn,
    CallbackIn,
    ChildIn,
    ChildPatch,
    DoseIn,
    FormIn,
    LoginIn,
    ReadingIn,
    SendIn,
    SymptomIn,
)
from server.fever.reminders import DOSE_KIND, GRADE_KINDS, plan_after_dose, plan_after_grade
from server.fever.store import FeverStore, Row, iso, parse_iso
from tools.antipyretics import GivenDose, check_dose, load_antipyretic_rules, resolve_drug
from tools.ble_thermometer import BleParseError, TemperatureType, parse_temperature_measurement
from tools.fever import (
    COLOUR_RANK,
    FeverInput,
    FeverInputError,
    TemperatureReading,
    grade_fever,
    load_fever_rules,
    parse_site,
)

# tools.fever reads bare numbers the way the grader does (385 -> 38.5, 102 -> °F, 45 -> re-measure);
# the diary stores readings exactly as the grader would read them, so it uses the same function.
from tools.fever import _celsius as _fever_celsius

MAX_CHILD_AGE_YEARS = 18
# grade features that mean dehydration: the dose check then refuses ibuprofen
DEHYDRATION_RULES = {"FV-RED-TURGOR", "FV-RED-NO-URINE", "FV-ORANGE-DRY", "FV-ORANGE-URINE"}
BLE_SITES: dict[TemperatureType, str] = {
    TemperatureType.armpit: "axillary",
    TemperatureType.ear: "ear",
    TemperatureType.tympanum: "ear",
    TemperatureType.mouth: "oral",
    TemperatureType.rectum: "rectal",
}
_PHONE = re.compile(r"^\+?[\d][\d\s-]{3,18}\d$")
_SEPARATORS = {"zh": "；", "en": "; "}


@dataclass
class FeverConfig:
    db_path: Path
    clinic_code: str = "demo-clinic"  # what a clinician signs up with
    default_clinic_id: str = "demo-clinic"
    nearest_emergency: str = (
        "最近的急诊：本院儿科急诊（24小时）；情况危急立即拨打120 / "
        "Nearest emergency: this hospital's paediatric emergency department (24 h); "
        "if life-threatening call 120 now"
    )
    token_ttl: timedelta = timedelta(days=30)
    history_days: float = 14.0  # readings and doses the grade looks at
    symptom_window_h: float = 24.0  # symptoms that still describe the child now
    antipyretic_window_h: float = 6.0
    ble_repeat_window_s: float = 120.0  # same value without device timestamp within this -> repeat
    night_check_hour: int = 2
    reminder_check_s: float = 5.0
    max_body_bytes: int = 64 * 1024
    ws_rate_per_minute: int = 240  # a reconnecting thermometer replays its memory in one burst
    ws_queue: int = 200


@dataclass(frozen=True)
class Account:
    account_id: str
    username: str
    role: Literal["family", "clinician"]
    display_name: str
    clinic_id: str
    lang: Literal["zh", "en"] | None

    @classmethod
    def from_row(cls, row: Row) -> Account:
        return cls(
            row["account_id"],
            row["username"],
            row["role"],
            row["display_name"],
            row["clinic_id"],
            row["lang"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "username": self.username,
            "role": self.role,
            "display_name": self.display_name,
            "clinic_id": self.clinic_id,
            "lang": self.lang,
        }


@dataclass(frozen=True)
class Event:
    """A message to push: to every connection of one account, or to the clinicians of one clinic."""

    audience: Literal["account", "clinic"]
    key: str
    message: dict[str, Any]


@dataclass
class Outcome:
    data: Any
    events: list[Event] = field(default_factory=list)
    status: int = 200


def utc_now() -> datetime:
    return datetime.now(UTC)


def _say(lang: str | None, zh: str, en: str) -> str:
    if lang == "zh":
        return zh
    if lang == "en":
        return en
    return f"{zh} / {en}"


def fields_error(exc: ValidationError) -> FeverError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return FeverError(422, "invalid_field", field=where, detail=first["msg"])


def normalise_temperature(
    value: float, unit: str | None, lang: str | None
) -> tuple[float, list[dict[str, str]]]:
    """°C as the grader reads it, and the warnings when the unit or decimal point was guessed.
    Impossible values (45 °C, 30 °C) raise a 422 asking to measure again: they are never stored."""
    try:
        unit = TemperatureReading.model_validate({"value": value, "unit": unit}).unit
    except ValidationError as exc:
        raise FeverError(422, "invalid_field", field="unit", detail='use "C", "F" or null') from exc
    rules = load_fever_rules()
    raw = f"{value:g}{'°' + unit if unit else ''}"
    value_c, warn_zh = _fever_celsius(value, unit, rules, "zh", raw)
    _, warn_en = _fever_celsius(value, unit, rules, "en", raw)
    if value_c is None:
        assert warn_zh is not None and warn_en is not None
        raise FeverError(
            422,
            "implausible_temperature",
            zh=warn_zh.message,
            en=warn_en.message,
            extra={"error": {"remeasure": True}},
        )
    warnings = []
    if warn_zh is not None and warn_en is not None:
        warnings.append({"code": warn_zh.code, "message": _say(lang, warn_zh.message, warn_en.message)})
    return round(value_c, 1), warnings


class FeverService:
    def __init__(
        self, store: FeverStore, config: FeverConfig, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store, self.config, self.clock = store, config, clock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _now(self) -> datetime:
        now = self.clock()
        return now if now.tzinfo else now.astimezone()

    def _child_lock(self, child_id: str) -> threading.Lock:
        """One writer per child at a time: the entry, the regrade and the colour change go together."""
        with self._locks_guard:
            return self._locks.setdefault(child_id, threading.Lock())

    # ================================================================== accounts

    def create_account(self, body: AccountIn) -> Outcome:
        if body.role == "clinician" and not hmac.compare_digest(
            (body.clinic_code or "").encode(), self.config.clinic_code.encode()
        ):
            raise FeverError(403, "bad_clinic_code")
        now = self._now()
        row = {
            "account_id": auth.new_id(),
            "username": body.username.casefold(),
            "password_hash": auth.hash_password(body.password),
            "role": body.role,
            "display_name": body.display_name or body.username,
            "clinic_id": body.clinic_id or self.config.default_clinic_id,
            "lang": body.lang,
            "created": iso(now),
        }
        if not self.store.create_account(row):
            raise FeverError(409, "username_taken")
        return Outcome(self._session(Account.from_row(row), now), status=201)

    def login(self, body: LoginIn) -> Outcome:
        row = self.store.account_by_username(body.username.strip().casefold())
        if row is None:
            auth.burn_time(body.password)
            raise FeverError(401, "bad_credentials")
        if not auth.verify_password(body.password, row["password_hash"]):
            raise FeverError(401, "bad_credentials")
        return Outcome(self._session(Account.from_row(row), self._now()))

    def _session(self, account: Account, now: datetime) -> dict[str, Any]:
        token = auth.new_token()
        self.store.add_token(
            auth.token_digest(token), account.account_id, iso(now), iso(now + self.config.token_ttl)
        )
        return {"token": token, **account.public()}

    def authenticate(self, token: str | None) -> Account:
        if not token:
            raise FeverError(401, "auth_required")
        row = self.store.account_for_token(auth.token_digest(token), iso(self._now()))
        if row is None:
            raise FeverError(401, "bad_token")
        return Account.from_row(row)

    def logout(self, token: str) -> Outcome:
        self.store.delete_token(auth.token_digest(token))
        return Outcome({"status": "signed_out"})

    # ================================================================== children

    def _child(self, child_id: str) -> Row:
        child = self.store.child(child_id)
        if child is None:
            raise FeverError(404, "child_not_found")
        return child

    def _own_child(self, account: Account, child_id: str) -> Row:
        """The child, if this family account owns it: every write goes through here."""
        if account.role != "family":
            raise wrong_role("family")
        child = self._child(child_id)
        if child["account_id"] != account.account_id:
            raise FeverError(403, "not_your_child")
        return child

    def _readable_child(self, account: Account, child_id: str) -> Row:
        """Families read their own children; clinicians read a child whose family sent their clinic
        a form or asked it for a call."""
        if account.role == "family":
            return self._own_child(account, child_id)
        child = self._child(child_id)
        if child["clinic_id"] != account.clinic_id or not self.store.child_shared_with_clinic(
            child_id, account.clinic_id
        ):
            raise FeverError(403, "not_your_clinic")
        return child

    def create_child(self, account: Account, body: ChildIn) -> Outcome:
        if account.role != "family":
            raise wrong_role("family")
        self._check_birth_date(body.birth_date)
        now = self._now()
        row = {
            "child_id": auth.new_id(),
            "account_id": account.account_id,
            "clinic_id": account.clinic_id,
            "name": body.name,
            "birth_date": body.birth_date.isoformat(),
            "sex": body.sex,
            "weight_kg": body.weight_kg,
            "allergies_json": body.allergies,
            "conditions_json": body.conditions,
            "created": iso(now),
            "updated": iso(now),
        }
        self.store.insert("children", row)
        return Outcome(self._child_json(self._child(row["child_id"]), now), status=201)

    def _check_birth_date(self, birth_date: date) -> None:
        today = self._now().astimezone().date()
        if birth_date > today:
            raise FeverError(
                422, "invalid_field", zh="出生日期不能在未来。", en="The birth date cannot be in the future."
            )
        if (today - birth_date).days > MAX_CHILD_AGE_YEARS * 366:
            raise FeverError(
                422,
                "invalid_field",
                zh=f"出生日期早于{MAX_CHILD_AGE_YEARS}年前（仅限儿童）。",
                en=f"The birth date is more than {MAX_CHILD_AGE_YEARS} years ago (for children only).",
            )

    def update_child(self, account: Account, child_id: str, body: ChildPatch) -> Outcome:
        with self._child_lock(child_id):
            child = self._own_child(account, child_id)
            changes = body.model_dump(exclude_unset=True)
            fields = {
                ("allergies_json" if k == "allergies" else "conditions_json" if k == "conditions" else k): v
                for k, v in changes.items()
                if v is not None
            }
            now = self._now()
            if fields:
                self.store.update_child(child_id, {**fields, "updated": iso(now)})
            child = self._child(child_id)
            data, events = self._regrade(account, child, now, trigger="profile")
            return Outcome({"child": self._child_json(self._child(child_id), now), **data}, events)

    def list_children(self, account: Account) -> Outcome:
        if account.role != "family":
            raise wrong_role("family")
        now = self._now()
        return Outcome([self._child_json(c, now) for c in self.store.children_of(account.account_id)])

    def get_child(self, account: Account, child_id: str) -> Outcome:
        return Outcome(self._child_json(self._readable_child(account, child_id), self._now()))

    def _child_json(self, child: Row, now: datetime) -> dict[str, Any]:
        months = age_months(child["birth_date"], now)
        grade = child["grade"]
        return {
            "child_id": child["child_id"],
            "name": child["name"],
            "birth_date": child["birth_date"],
            "sex": child["sex"],
            "age_months": months,
            "age_text": age_text(months),
            "weight_kg": child["weight_kg"],
            "allergies": child["allergies"],
            "conditions": child["conditions"],
            "clinic_id": child["clinic_id"],
            "colour": child["colour"],
            "call_120": bool(grade and grade["call_120"]),
            "label": grade["label"] if grade else None,
            "created": child["created"],
        }

    # ================================================================== times

    def _entry_time(self, raw: datetime | None, now: datetime, child: Row) -> datetime:
        """When an entry happened: given (naive = local time) or now; never in the future, never
        before the child was born."""
        if raw is None:
            return now
        at = raw if raw.tzinfo else raw.astimezone()
        tolerance = timedelta(minutes=load_fever_rules().future_tolerance_minutes)
        if at - now > tolerance:
            raise FeverError(422, "future_time", time=at.isoformat(timespec="minutes"))
        if at.astimezone().date() < date.fromisoformat(child["birth_date"]):
            raise FeverError(422, "before_birth", time=at.isoformat(timespec="minutes"))
        return at.astimezone(UTC)

    # ================================================================== readings

    def add_reading(self, account: Account, child_id: str, body: ReadingIn) -> Outcome:
        child = self._own_child(account, child_id)
        now = self._now()
        at = self._entry_time(body.time, now, child)
        site = self._site(body.site)
        value_c, warnings = normalise_temperature(body.value, body.unit, account.lang)
        # A reading the page decoded from a thermometer itself: its time is the device's time.
        device_time = iso(at) if body.source == "ble" and body.time is not None else None
        row = {
            "reading_id": auth.new_id(),
            "child_id": child_id,
            "value_c": value_c,
            "entered_value": body.value,
            "entered_unit": body.unit,
            "site": site,
            "measured_at": iso(at),
            "source": body.source,
            "device_time": device_time,
            "payload_hex": None,
            "warnings_json": warnings,
            "created": iso(now),
        }
        return self._store_reading(account, child_id, row, at, now)

    def add_ble(self, account: Account, child_id: str, body: BleIn) -> Outcome:
        child = self._own_child(account, child_id)
        now = self._now()
        # The device clock has no zone: it is read in the zone of the receipt time (the phone's
        # offset when the page sends received_at, else the server's local zone).
        received = body.received_at or now.astimezone()
        received = received if received.tzinfo else received.astimezone()
        payload = self._payload(body.payload_hex)
        try:
            measurement = parse_temperature_measurement(payload, received_at=received)
        except BleParseError as exc:
            raise FeverError(
                422,
                "malformed_ble",
                zh=f"蓝牙体温数据格式错误：{exc.zh}",
                en=f"Malformed Bluetooth temperature frame: {exc.en}",
                extra={"error": {"reason": exc.code}},
            ) from exc
        if measurement.value_c is None:
            raise FeverError(422, "ble_no_value", special=measurement.special)
        measured = measurement.measured_at or received
        at = self._entry_time(measured, now, child)
        device_site = BLE_SITES.get(measurement.temperature_type) if measurement.temperature_type else None
        site = device_site or self._site(body.site)
        value_c, warnings = normalise_temperature(measurement.value_c, "C", account.lang)
        row = {
            "reading_id": auth.new_id(),
            "child_id": child_id,
            "value_c": value_c,
            "entered_value": measurement.value_raw,
            "entered_unit": measurement.unit,
            "site": site,
            "measured_at": iso(at),
            "source": "ble",
            "device_time": iso(measurement.timestamp) if measurement.timestamp else None,
            "payload_hex": payload.hex(),
            "warnings_json": warnings,
            "created": iso(now),
        }
        return self._store_reading(account, child_id, row, at, now)

    @staticmethod
    def _payload(text: str) -> bytes:
        cleaned = re.sub(r"[\s:-]", "", text)
        if cleaned.lower().startswith("0x"):
            cleaned = cleaned[2:]
        try:
            return bytes.fromhex(cleaned)
        except ValueError as exc:
            raise FeverError(422, "bad_payload_hex") from exc

    @staticmethod
    def _site(raw: str | None) -> str | None:
        try:
            return parse_site(raw)
        except FeverInputError as exc:
            raise FeverError(422, exc.code, zh=exc.zh, en=exc.en) from exc

    def _store_reading(
        self, account: Account, child_id: str, row: Row, at: datetime, now: datetime
    ) -> Outcome:
        with self._child_lock(child_id):
            child = self._child(child_id)
            if row["source"] == "ble":
                window = timedelta(seconds=self.config.ble_repeat_window_s)
                repeat = self.store.ble_duplicate(
                    child_id, row["value_c"], row["device_time"], (iso(at - window), iso(at + window))
                )
                if repeat is not None:
                    return Outcome(
                        {"duplicate": True, "reading": self._reading_json(repeat), "grade": child["grade"]}
                    )
            self.store.insert("readings", row)
            data, events = self._regrade(account, child, now, trigger=f"reading:{row['reading_id']}")
            stored = {**row, "warnings": row["warnings_json"]}
            return Outcome({"duplicate": False, "reading": self._reading_json(stored), **data}, events, 201)

    @staticmethod
    def _reading_json(
        row: Row, dose_times: list[datetime] | None = None, window_h: float = 6.0
    ) -> dict[str, Any]:
        out = {
            "reading_id": row["reading_id"],
            "value_c": row["value_c"],
            "entered_value": row["entered_value"],
            "entered_unit": row["entered_unit"],
            "site": row["site"],
            "time": row["measured_at"],
            "source": row["source"],
            "device_time": row["device_time"],
            "warnings": row["warnings"],
        }
        if dose_times is not None:
            out["antipyretic_within_6h"] = _after_dose(parse_iso(row["measured_at"]), dose_times, window_h)
        return out

    # ================================================================== doses and symptoms

    def check_dose(self, account: Account, child_id: str, body: DoseIn) -> Outcome:
        child = self._own_child(account, child_id)
        now = self._now()
        at = self._entry_time(body.time, now, child)
        return Outcome({"check": self._dose_check(child, body, at).model_dump(mode="json")})

    def _dose_check(self, child: Row, body: DoseIn, at: datetime) -> Any:
        since = iso(at - timedelta(hours=24))
        history = [
            GivenDose(drug=d["drug"], given_at=parse_iso(d["given_at"]), mg=d["mg"])
            for d in self.store.doses(child["child_id"], since=since)
            if parse_iso(d["given_at"]) <= at
        ]
        features = (child["grade"] or {}).get("features", [])
        return check_dose(
            body.drug,
            child["weight_kg"],
            age_months(child["birth_date"], at),
            history,
            at,
            concentration_mg_per_ml=body.concentration_mg_per_ml,
            requested_mg=body.mg,
            requested_ml=body.ml,
            dehydration_signs=any(f["rule_id"] in DEHYDRATION_RULES for f in features),
        )

    def now(self) -> datetime:
        return self._now()

    def add_dose(
        self, account: Account, child_id: str, body: DoseIn, *, already_given: bool = False
    ) -> Outcome:
        """Logged only when the label rules allow it; a refusal is a 422 with the reason.
        `already_given`: the parent reports a dose given earlier — a fact, logged with its check."""
        self._own_child(account, child_id)
        now = self._now()
        with self._child_lock(child_id):
            child = self._child(child_id)
            at = self._entry_time(body.time, now, child)
            check = self._dose_check(child, body, at)
            check_json = check.model_dump(mode="json")
            if not check.allowed and not already_given:
                instead = check.instead
                raise FeverError(
                    422,
                    "dose_refused",
                    zh=check.reason.zh + (instead.zh if instead else ""),
                    en=check.reason.en + (" " + instead.en if instead else ""),
                    extra={"error": {"reason": check.code}, "check": check_json},
                )
            mg = body.mg
            if mg is None and body.ml is not None and body.concentration_mg_per_ml is not None:
                mg = round(body.ml * body.concentration_mg_per_ml, 1)
            row = {
                "dose_id": auth.new_id(),
                "child_id": child_id,
                "drug": body.drug,
                "drug_id": check.drug.value if check.drug else resolve_drug(body.drug),
                "mg": mg,
                "ml": body.ml,
                "given_at": iso(at),
                "check_json": check_json,
                "created": iso(now),
            }
            self.store.insert("doses", row)
            reminder = plan_after_dose(at, now, self._lang(account, child))
            self.store.replace_pending_reminders(
                child_id, [DOSE_KIND], [self._reminder_row(child, reminder, now)]
            )
            data, events = self._regrade(account, child, now, trigger=f"dose:{row['dose_id']}")
            return Outcome({"dose": self._dose_json(row), "check": check_json, **data}, events, 201)

    @staticmethod
    def _dose_json(row: Row) -> dict[str, Any]:
        return {k: row[k] for k in ("dose_id", "drug", "drug_id", "mg", "ml")} | {"time": row["given_at"]}

    def add_symptom(self, account: Account, child_id: str, body: SymptomIn) -> Outcome:
        self._own_child(account, child_id)
        now = self._now()
        with self._child_lock(child_id):
            child = self._child(child_id)
            at = self._entry_time(body.time, now, child)
            row = {
                "entry_id": auth.new_id(),
                "child_id": child_id,
                "text": body.text,
                "noted_at": iso(at),
                "created": iso(now),
            }
            self.store.insert("symptoms", row)
            data, events = self._regrade(account, child, now, trigger=f"symptom:{row['entry_id']}")
            return Outcome(
                {"entry": {"entry_id": row["entry_id"], "text": body.text, "time": iso(at)}, **data},
                events,
                201,
            )

    # ================================================================== grading

    @staticmethod
    def _lang(account: Account, child: Row) -> Literal["zh", "en"] | None:
        return account.lang if account.account_id == child["account_id"] else None

    def _fever_input(self, child: Row, now: datetime, lang: str | None) -> FeverInput:
        since = now - timedelta(days=self.config.history_days)
        readings = self.store.readings(child["child_id"], since=iso(since))[-2000:]
        dose_since = since - timedelta(hours=self.config.antipyretic_window_h)
        dose_times = [
            parse_iso(d["given_at"]) for d in self.store.doses(child["child_id"], since=iso(dose_since))
        ]
        symptoms = self.store.symptoms(
            child["child_id"], since=iso(now - timedelta(hours=self.config.symptom_window_h))
        )
        known = load_fever_rules().conditions
        condition_ids = [c for c in child["conditions"] if c in known]
        condition_words = [c for c in child["conditions"] if c not in known]
        texts = [s["text"] for s in symptoms] + condition_words
        sep = _SEPARATORS["en"] if lang == "en" else _SEPARATORS["zh"]
        return FeverInput(
            age_days=float((now.astimezone().date() - date.fromisoformat(child["birth_date"])).days),
            weight_kg=child["weight_kg"],
            readings=[
                TemperatureReading(
                    value=r["value_c"],
                    unit="C",
                    site=r["site"],
                    time=parse_iso(r["measured_at"]),
                    antipyretic_given=_after_dose(
                        parse_iso(r["measured_at"]), dose_times, self.config.antipyretic_window_h
                    ),
                )
                for r in readings
            ],
            text=sep.join(texts)[:4000],
            lang=lang,  # type: ignore[arg-type]
            conditions=condition_ids,  # type: ignore[arg-type]
            now=now,
        )

    def _grade(
        self, child: Row, now: datetime, lang: str | None
    ) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
        try:
            grade = grade_fever(self._fever_input(child, now, lang))
        except FeverInputError as exc:
            return None, {"code": exc.code, "message": _say(lang, exc.zh, exc.en)}
        return grade.model_dump(mode="json"), None

    def _regrade(
        self, account: Account, child: Row, now: datetime, trigger: str
    ) -> tuple[dict[str, Any], list[Event]]:
        """Grade the diary; store a colour change; the events to push; re-plan the reminders."""
        grade, problem = self._grade(child, now, self._lang(account, child))
        if grade is None:
            return {"grade": None, "grade_error": problem}, []
        previous = child["grade"]
        was_red = child["colour"] == "red"
        was_120 = bool(previous and previous["call_120"])
        changed = child["colour"] != grade["colour"] or was_120 != grade["call_120"]
        change = None
        if changed:
            change = {
                "colour": grade["colour"],
                "call_120": int(grade["call_120"]),
                "label": grade["label"],
                "rule_ids_json": [f["rule_id"] for f in grade["features"]],
                "trigger": trigger,
                "at": iso(now),
            }
        self.store.record_grade(child["child_id"], grade, change, iso(now))
        owner = child["account_id"]
        events = [
            Event(
                "account",
                owner,
                {"type": "grade", "child_id": child["child_id"], "colour_changed": changed, "grade": grade},
            )
        ]
        if grade["colour"] == "red" and (not was_red or (grade["call_120"] and not was_120)):
            events.append(Event("account", owner, self._alert(child, grade, now)))
        self._plan_reminders(child, grade, now)
        return {"grade": grade, "colour_changed": changed}, events

    def _alert(self, child: Row, grade: dict[str, Any], now: datetime) -> dict[str, Any]:
        lang = grade["lang"]
        first_step = grade["do_now"][0] if grade["do_now"] else ""
        name = child["name"]
        head = f"{name}：{grade['label']}。" if lang == "zh" else f"{name}: {grade['label']}. "
        return {
            "type": "alert",
            "child_id": child["child_id"],
            "colour": "red",
            "call_120": grade["call_120"],
            "message": f"{head}{grade['meaning']} {first_step}".strip(),
            "nearest_emergency": self.config.nearest_emergency,
            "features": [f["name"][lang] for f in grade["features"]],
            "at": iso(now),
        }

    def current_grade(self, account: Account, child_id: str) -> Outcome:
        """The grade of the diary as of now (not stored: reading it changes nothing)."""
        child = self._readable_child(account, child_id)
        try:
            grade = grade_fever(self._fever_input(child, self._now(), account.lang))
        except FeverInputError as exc:
            raise FeverError(422, exc.code, zh=exc.zh, en=exc.en) from exc
        return Outcome(grade.model_dump(mode="json"))

    # ================================================================== reminders

    def _reminder_row(self, child: Row, planned: Any, now: datetime) -> Row:
        return {
            "reminder_id": auth.new_id(),
            "child_id": child["child_id"],
            "account_id": child["account_id"],
            "kind": planned.kind,
            "due_at": iso(planned.due_at),
            "message": planned.message,
            "status": "pending",
            "created": iso(now),
        }

    def _plan_reminders(self, child: Row, grade: dict[str, Any], now: datetime) -> None:
        readings = self.store.readings(child["child_id"], since=iso(now - timedelta(days=2)))
        latest = parse_iso(readings[-1]["measured_at"]) if readings else None
        plan = plan_after_grade(grade, latest, now, self.config.night_check_hour)
        self.store.replace_pending_reminders(
            child["child_id"], GRADE_KINDS, [self._reminder_row(child, p, now) for p in plan]
        )

    def due_reminders(self, now: datetime) -> list[Row]:
        return self.store.due_reminders(iso(now))

    def mark_reminders_sent(self, reminder_ids: list[str], now: datetime) -> None:
        self.store.mark_reminders_sent(reminder_ids, iso(now))

    @staticmethod
    def reminder_json(row: Row) -> dict[str, Any]:
        return {
            k: row[k] for k in ("reminder_id", "child_id", "kind", "due_at", "message", "status", "sent_at")
        }

    def reminder_event(self, row: Row) -> Event:
        return Event("account", row["account_id"], {"type": "reminder", **self.reminder_json(row)})

    # ================================================================== timeline

    def timeline(self, account: Account, child_id: str) -> Outcome:
        child = self._readable_child(account, child_id)
        now = self._now()
        doses = self.store.doses(child_id)
        dose_times = [parse_iso(d["given_at"]) for d in doses]
        grade, problem = self._grade(child, now, account.lang)
        return Outcome(
            {
                "child": self._child_json(child, now),
                "readings": [
                    self._reading_json(r, dose_times, self.config.antipyretic_window_h)
                    for r in self.store.readings(child_id)
                ],
                "doses": [self._dose_json(d) for d in doses],
                "symptoms": [
                    {"entry_id": s["entry_id"], "text": s["text"], "time": s["noted_at"]}
                    for s in self.store.symptoms(child_id)
                ],
                "grades": [self._change_json(c) for c in self.store.colour_changes(child_id)],
                "current_grade": grade,
                "grade_error": problem,
                "reminders": [self.reminder_json(r) for r in self.store.reminders(child_id)],
            }
        )

    @staticmethod
    def _change_json(row: Row) -> dict[str, Any]:
        return {
            "colour": row["colour"],
            "call_120": bool(row["call_120"]),
            "label": row["label"],
            "rule_ids": row["rule_ids"],
            "trigger": row["trigger"],
            "time": row["at"],
        }

    # ================================================================== forms

    def _diary(self, child: Row, now: datetime) -> Diary:
        since = iso(now - timedelta(days=self.config.history_days))
        child_id = child["child_id"]
        return Diary(
            child=child,
            readings=self.store.readings(child_id, since=since),
            doses=self.store.doses(child_id, since=since),
            symptoms=self.store.symptoms(child_id, since=since),
            colour_changes=self.store.colour_changes(child_id),
        )

    def create_form(self, account: Account, child_id: str, body: FormIn) -> Outcome:
        child = self._own_child(account, child_id)
        now = self._now()
        grade, _ = self._grade(child, now, account.lang)
        form = build_form(self._diary(child, now), grade, now, body.note)
        row = {
            "form_id": auth.new_id(),
            "child_id": child_id,
            "account_id": account.account_id,
            "clinic_id": child["clinic_id"],
            "status": "draft",
            "form_json": form,
            "created": iso(now),
        }
        self.store.insert("forms", row)
        return Outcome(self._form_json(self._form_row(row["form_id"])), status=201)

    def _form_row(self, form_id: str) -> Row:
        row = self.store.form(form_id)
        if row is None:
            raise FeverError(404, "form_not_found")
        return row

    def _readable_form(self, account: Account, form_id: str) -> Row:
        row = self._form_row(form_id)
        if account.role == "family":
            if row["account_id"] != account.account_id:
                raise FeverError(403, "not_your_form")
        elif row["clinic_id"] != account.clinic_id or row["status"] != "sent":
            raise FeverError(403, "not_your_clinic")
        return row

    @staticmethod
    def _form_json(row: Row) -> dict[str, Any]:
        return {
            "form_id": row["form_id"],
            "child_id": row["child_id"],
            "clinic_id": row["clinic_id"],
            "status": row["status"],
            "created": row["created"],
            "sent_at": row["sent_at"],
            "form": row["form"],
        }

    def send_form(self, account: Account, form_id: str, body: SendIn) -> Outcome:
        """Sends a draft to the clinic once. Sending again (same form, or the same idempotency key)
        answers the same and pushes nothing."""
        if account.role != "family":
            raise wrong_role("family")
        row = self._readable_form(account, form_id)
        key = body.idempotency_key
        if key is not None:
            earlier = self.store.form_by_key(account.account_id, key)
            if earlier is not None and earlier["form_id"] != form_id:
                return Outcome(self._sent(earlier, duplicate=True))
        try:
            first = self.store.send_form(form_id, key, iso(self._now()))
        except sqlite3.IntegrityError:  # the same key, sent concurrently for another form
            first = False
        row = self._form_row(form_id)
        events = []
        if first:
            events.append(Event("clinic", row["clinic_id"], {"type": "form", "form": self._form_json(row)}))
        return Outcome(self._sent(row, duplicate=not first), events)

    @staticmethod
    def _sent(row: Row, duplicate: bool) -> dict[str, Any]:
        return {
            "status": "sent",
            "form_id": row["form_id"],
            "sent_at": row["sent_at"],
            "duplicate": duplicate,
        }

    def list_forms(self, account: Account, status: str | None) -> Outcome:
        if status not in (None, "draft", "sent"):
            raise FeverError(422, "invalid_field", field="status", detail='use "draft" or "sent"')
        if account.role == "clinician":
            rows = [] if status == "draft" else self.store.forms_of_clinic(account.clinic_id)
        else:
            rows = self.store.forms_of_account(account.account_id, status)
        return Outcome([self._form_json(r) for r in rows])

    def get_form(self, account: Account, form_id: str) -> Outcome:
        return Outcome(self._form_json(self._readable_form(account, form_id)))

    def form_fhir(self, account: Account, form_id: str) -> Outcome:
        return Outcome(fhir_bundle(self._readable_form(account, form_id)))

    # ================================================================== callbacks

    def request_callback(self, account: Account, child_id: str, body: CallbackIn) -> Outcome:
        """One open request per child: asking again returns the open one and pushes nothing."""
        phone = body.phone
        if phone is not None and not _PHONE.match(phone):
            raise FeverError(422, "bad_phone")
        with self._child_lock(child_id):
            child = self._own_child(account, child_id)
            existing = self.store.open_callback_for(child_id)
            if existing is not None:
                return Outcome(self._callback_json(existing))
            row = {
                "callback_id": auth.new_id(),
                "child_id": child_id,
                "account_id": account.account_id,
                "clinic_id": child["clinic_id"],
                "phone": phone,
                "note": body.note,
                "status": "open",
                "created": iso(self._now()),
            }
            self.store.insert("callbacks", row)
        callback = self._callback_json(self._callback_row(row["callback_id"]))
        return Outcome(
            callback, [Event("clinic", row["clinic_id"], {"type": "callback", "callback": callback})], 201
        )

    def _callback_row(self, callback_id: str) -> Row:
        row = self.store.callback(callback_id)
        if row is None:
            raise FeverError(404, "callback_not_found")
        return row

    def _callback_json(self, row: Row) -> dict[str, Any]:
        child = self._child(row["child_id"])
        grade = child["grade"]
        now = self._now()
        months = age_months(child["birth_date"], now)
        temps = (grade or {}).get("temperature") or {}
        return {
            "callback_id": row["callback_id"],
            "child_id": row["child_id"],
            "clinic_id": row["clinic_id"],
            "phone": row["phone"],
            "note": row["note"],
            "status": row["status"],
            "created": row["created"],
            "handled_at": row["handled_at"],
            "handled_by": row["handled_by"],
            "colour": child["colour"],
            "summary": {
                "child_name": child["name"],
                "age_text": age_text(months),
                "weight_kg": child["weight_kg"],
                "label": grade["label"] if grade else None,
                "call_120": bool(grade and grade["call_120"]),
                "latest_c": temps.get("latest_c"),
                "peak_c": temps.get("peak_c"),
                "fever_days": grade["fever_days"] if grade else None,
                "features": [f["name"] for f in grade["features"]] if grade else [],
            },
        }

    def list_callbacks(self, account: Account, status: str | None) -> Outcome:
        """Clinicians: the clinic's queue (default open), reddest first, then oldest first."""
        if status not in (None, "open", "handled", "all"):
            raise FeverError(422, "invalid_field", field="status", detail='use "open", "handled" or "all"')
        if account.role == "family":
            return Outcome(
                [self._callback_json(r) for r in self.store.callbacks_of_account(account.account_id)]
            )
        wanted = None if status == "all" else status or "open"
        queue = [self._callback_json(r) for r in self.store.callbacks_of_clinic(account.clinic_id, wanted)]
        queue.sort(
            key=lambda c: (c["status"] != "open", -COLOUR_RANK.get(c["colour"] or "green", 0), c["created"])
        )
        return Outcome(queue)

    def handle_callback(self, account: Account, callback_id: str) -> Outcome:
        if account.role != "clinician":
            raise wrong_role("clinician")
        row = self._callback_row(callback_id)
        if row["clinic_id"] != account.clinic_id:
            raise FeverError(403, "not_your_clinic")
        first = self.store.handle_callback(callback_id, account.account_id, iso(self._now()))
        callback = self._callback_json(self._callback_row(callback_id))
        events = (
            [Event("clinic", row["clinic_id"], {"type": "callback", "callback": callback})] if first else []
        )
        return Outcome(callback, events)

    # ================================================================== reference data

    @staticmethod
    def meta() -> dict[str, Any]:
        """What the pages offer in their pickers."""
        rules = load_fever_rules()
        drugs = load_antipyretic_rules().drugs
        return {
            "sites": [{"id": k, "zh": v.zh, "en": v.en} for k, v in rules.sites.items() if k != "unknown"],
            "conditions": [{"id": k, "zh": v.zh, "en": v.en} for k, v in rules.conditions.items()],
            "drugs": [{"id": d.id.value, "zh": d.name.zh, "en": d.name.en} for d in drugs],
            "colours": {k: {"zh": v.label.zh, "en": v.label.en} for k, v in rules.colours.items()},
            "ble": {"service": "0x1809", "characteristic": "0x2A1C"},
        }


def _after_dose(at: datetime, dose_times: list[datetime], window_h: float) -> bool:
    window = timedelta(hours=window_h)
    return any(timedelta(0) <= at - given <= window for given in dose_times)
