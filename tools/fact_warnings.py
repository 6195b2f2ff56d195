"""Stable warning codes of the fact extractor and their zh/en texts.

Codes are a contract (the engine and the UI may key on them); texts may be reworded freely.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tools.triage_models import FactWarning, Lang

WarningCode = Literal[
    "implausible_temperature",
    "implausible_heart_rate",
    "implausible_respiratory_rate",
    "implausible_spo2",
    "implausible_blood_pressure",
    "implausible_glucose",
    "implausible_age",
    "implausible_pregnancy_weeks",
    "unknown_unit",
    "assumed_fahrenheit",
    "assumed_decimal_point",
    "assumed_mg_dl",
    "assumed_kpa",
    "possible_pregnancy",
    "multiple_values",
]

# Quantity names per Facts field, used by the {quantity} placeholder.
QUANTITY_NAMES: dict[str, tuple[str, str]] = {
    "age_months": ("年龄", "age"),
    "pregnancy_weeks": ("孕周", "pregnancy weeks"),
    "duration_hours": ("病程", "duration"),
    "vitals.temperature_c": ("体温", "temperature"),
    "vitals.heart_rate": ("心率", "heart rate"),
    "vitals.respiratory_rate": ("呼吸频率", "breathing rate"),
    "vitals.spo2": ("血氧饱和度", "oxygen saturation"),
    "vitals.systolic_bp": ("血压", "blood pressure"),
    "vitals.diastolic_bp": ("血压", "blood pressure"),
    "vitals.glucose_mmol": ("血糖", "blood glucose"),
}

_RECHECK_ZH = "可能是输入或测量有误，这个数值没有采用，请重新测量后再告诉我。"
_RECHECK_EN = "it may be a typing or measuring error, so it was not used; please measure again and tell me."

# code -> (zh template, en template); placeholders: raw, value, values, quantity.
WARNING_TEMPLATES: dict[str, tuple[str, str]] = {
    "implausible_temperature": (
        "体温“{raw}”不在人体可能的范围内（34–43.5℃），" + _RECHECK_ZH,
        'The temperature "{raw}" is outside the range possible for a person (34–43.5 °C); ' + _RECHECK_EN,
    ),
    "implausible_heart_rate": (
        "心率“{raw}”不在可能的范围内（20–300 次/分），" + _RECHECK_ZH,
        'The heart rate "{raw}" is outside the possible range (20–300 per minute); ' + _RECHECK_EN,
    ),
    "implausible_respiratory_rate": (
        "呼吸频率“{raw}”不在可能的范围内（3–120 次/分），" + _RECHECK_ZH,
        'The breathing rate "{raw}" is outside the possible range (3–120 per minute); ' + _RECHECK_EN,
    ),
    "implausible_spo2": (
        "血氧饱和度“{raw}”不在可能的范围内（50–100%），" + _RECHECK_ZH,
        'The oxygen saturation "{raw}" is outside the possible range (50–100 %); ' + _RECHECK_EN,
    ),
    "implausible_blood_pressure": (
        "血压“{raw}”不合理（收缩压应在 40–300 mmHg 之间，且高于舒张压），" + _RECHECK_ZH,
        'The blood pressure "{raw}" is not possible (systolic 40–300 mmHg and above the diastolic); '
        + _RECHECK_EN,
    ),
    "implausible_glucose": (
        "血糖“{raw}”不在可能的范围内（0.5–60 mmol/L），" + _RECHECK_ZH,
        'The blood glucose "{raw}" is outside the possible range (0.5–60 mmol/L); ' + _RECHECK_EN,
    ),
    "implausible_age": (
        "年龄“{raw}”超出了可能的范围，没有采用，请确认患者的年龄。",
        'The age "{raw}" is outside the possible range and was not used; please confirm the patient\'s age.',
    ),
    "implausible_pregnancy_weeks": (
        "孕周“{raw}”超出了可能的范围（最多约 45 周），没有采用，请确认。",
        'The pregnancy duration "{raw}" is outside the possible range (at most about 45 weeks) '
        "and was not used; please confirm.",
    ),
    "unknown_unit": (
        "没看懂“{raw}”里{quantity}的单位，这个数值没有采用；请用常用单位重新告诉我"
        "（体温用℃，血糖用 mmol/L，血压用 mmHg）。",
        'I could not understand the unit of the {quantity} in "{raw}", so the value was not used; '
        "please tell me again in a usual unit (°C, mmol/L, mmHg).",
    ),
    "assumed_fahrenheit": (
        "“{raw}”按华氏度理解，约合 {value}℃；如果不对，请告诉我摄氏度数值。",
        '"{raw}" was read as degrees Fahrenheit, about {value} °C; if that is wrong, '
        "please give the temperature in °C.",
    ),
    "assumed_decimal_point": (
        "“{raw}”按 {value}℃ 理解（补上了小数点）；如果不对，请更正。",
        '"{raw}" was read as {value} °C (a missing decimal point); if that is wrong, please correct it.',
    ),
    "assumed_mg_dl": (
        "血糖“{raw}”没有写单位，数值较大，按 mg/dL 理解，约合 {value} mmol/L；如果不对，请注明单位。",
        'The blood glucose "{raw}" has no unit and is large, so it was read as mg/dL, about '
        "{value} mmol/L; if that is wrong, please give the unit.",
    ),
    "assumed_kpa": (
        "血压“{raw}”数值很小，按 kPa 理解，约合 {value} mmHg；如果不对，请注明单位。",
        'The blood pressure "{raw}" is very low as mmHg, so it was read as kPa, about {value} mmHg; '
        "if that is wrong, please give the unit.",
    ),
    "possible_pregnancy": (
        "提到可能怀孕，已按“可能怀孕”处理；能确认的话请告诉我。",
        "A possible pregnancy was mentioned, so it is treated as possibly pregnant; "
        "please confirm if you can.",
    ),
    "multiple_values": (
        "提到了多个{quantity}（{values}），采用了“{raw}”；如果不是患者本人的，请告诉我。",
        'Several values of {quantity} were mentioned ({values}); "{raw}" was used. '
        "If that is not the patient's, please tell me.",
    ),
}


class _Defaults(dict[str, str]):
    """format_map helper: a missing placeholder renders as empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


def warning_message(code: str, lang: Lang, **params: object) -> str:
    """The zh or en text of a warning code, filled with params (raw, value, values, field)."""
    zh, en = WARNING_TEMPLATES.get(code, ("数据需要确认：“{raw}”。", 'Please confirm: "{raw}".'))
    field = str(params.get("field") or "")
    names = QUANTITY_NAMES.get(field, ("数值", "value"))
    values = _Defaults({k: _fmt(v) for k, v in params.items()})
    values.setdefault("quantity", names[0] if lang == "zh" else names[1])
    return (zh if lang == "zh" else en).format_map(values)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class ExtractionWarning(FactWarning):
    """A FactWarning carrying both languages plus what it is about.

    `message` is in the language chosen at extraction time; `localized()` gives another one.
    """

    field: str | None = None  # Facts field it concerns, dotted ("vitals.temperature_c")
    evidence: str = ""  # the matched text
    params: dict[str, str | float] = Field(default_factory=dict)
    message_zh: str
    message_en: str

    @classmethod
    def build(
        cls, code: str, lang: Lang, field: str | None, evidence: str, **params: str | float
    ) -> ExtractionWarning:
        all_params: dict[str, str | float] = {"raw": evidence, **params}
        if field:
            all_params["field"] = field
        zh = warning_message(code, "zh", **all_params)
        en = warning_message(code, "en", **all_params)
        return cls(
            code=code,
            message=zh if lang == "zh" else en,
            field=field,
            evidence=evidence,
            params=params,
            message_zh=zh,
            message_en=en,
        )

    def localized(self, lang: Lang) -> FactWarning:
        return FactWarning(code=self.code, message=self.message_zh if lang == "zh" else self.message_en)
