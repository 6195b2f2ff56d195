"""Request bodies of the fever API (REST and the /ws/fever messages). Unknown fields are refused
so a typo in a field name is reported, not silently ignored."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.triage_models import Lang

Role = Literal["family", "clinician"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AccountIn(_Body):
    role: Role
    username: str = Field(min_length=3, max_length=64, pattern=r"^[\w.@+-]+$")
    password: str = Field(min_length=8, max_length=200)
    display_name: str = Field(default="", max_length=80)
    clinic_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    clinic_code: str | None = Field(default=None, max_length=200)  # required for clinicians
    lang: Lang | None = None  # language of grades and pushed messages (default: from the text)


class LoginIn(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


def _as_list(value: object) -> object:
    """ "花生、青霉素" or ["花生", "青霉素"] -> a list of non-empty strings."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace("、", ",").replace("，", ",").replace(";", ",").split(",")]
        return [p for p in parts if p]
    return value


class ChildIn(_Body):
    name: str = Field(min_length=1, max_length=40)
    birth_date: date
    sex: Literal["male", "female"] | None = None
    weight_kg: float | None = Field(default=None, gt=0, le=300, allow_inf_nan=False)
    allergies: list[str] = Field(default_factory=list, max_length=30)
    # ids from GET /api/fever/meta (heart_disease, premature, ...) or free words ("早产", "先心病")
    conditions: list[str] = Field(default_factory=list, max_length=30)

    @field_validator("allergies", "conditions", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return _as_list(value)

    @field_validator("sex", mode="before")
    @classmethod
    def _sex_alias(cls, value: object) -> object:
        aliases = {"男": "male", "女": "female", "m": "male", "f": "female", "boy": "male", "girl": "female"}
        return aliases.get(value.strip().lower(), value) if isinstance(value, str) else value


class ChildPatch(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=40)
    weight_kg: float | None = Field(default=None, gt=0, le=300, allow_inf_nan=False)
    allergies: list[str] | None = Field(default=None, max_length=30)
    conditions: list[str] | None = Field(default=None, max_length=30)

    @field_validator("allergies", "conditions", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return None if value is None else _as_list(value)


class ReadingIn(_Body):
    value: float = Field(allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=12)  # "C" | "F" | null (guessed from the value)
    site: str | None = Field(default=None, max_length=20)  # axillary|ear|forehead|oral|rectal or 腋下 ...
    time: datetime | None = None  # default: now
    source: Literal["manual", "ble"] = "manual"


class BleIn(_Body):
    payload_hex: str = Field(min_length=1, max_length=200)
    received_at: datetime | None = None  # the phone's receipt time, with its UTC offset
    site: str | None = Field(default=None, max_length=20)  # when the device sends no temperature type


class DoseIn(_Body):
    drug: str = Field(min_length=1, max_length=60)
    mg: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    ml: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    concentration_mg_per_ml: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    time: datetime | None = None  # default: now


class SymptomIn(_Body):
    text: str = Field(min_length=1, max_length=2000)
    time: datetime | None = None


class FormIn(_Body):
    note: str | None = Field(default=None, max_length=2000)  # the parent's own words for the doctor


class SendIn(_Body):
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=100)


class CallbackIn(_Body):
    phone: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, max_length=1000)
