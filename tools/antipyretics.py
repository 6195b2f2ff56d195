"""Label-rule checks for children's fever medicines: paracetamol (对乙酰氨基酚) and ibuprofen (布洛芬).

Only these two, only the rules printed on typical over-the-counter labels (tools/data/antipyretics.yaml,
with citations): weight-based dose, minimum age, minimum interval, maximum doses and mg per 24 h,
an adult-equivalent cap. This is not prescribing: every answer says to follow the label or a doctor
(按说明书/遵医嘱). Any other medicine is refused with "ask a doctor or pharmacist".

Deterministic and pure: the caller passes the dosing history and the request time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DATA_FILE = Path(__file__).resolve().parent / "data" / "antipyretics.yaml"
WINDOW_24H = timedelta(hours=24)


class DrugId(StrEnum):
    paracetamol = "paracetamol"
    ibuprofen = "ibuprofen"


class Bilingual(BaseModel):
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


# ------------------------------------------------------------------------------------ rule data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CitationDef(_Strict):
    name: str
    year: int
    section: str


class Citation(BaseModel):
    id: str
    name: str
    year: int
    section: str


class ValueRule(_Strict):
    value: float
    usual: float | None = None
    cite: list[str]


class RangeRule(_Strict):
    min: float
    max: float
    cite: list[str]


class FlagRule(_Strict):
    value: bool
    cite: list[str]


class DrugRules(_Strict):
    min_age_months: ValueRule
    dose_mg_per_kg: RangeRule
    max_single_dose_mg: ValueRule
    min_interval_hours: ValueRule
    max_doses_24h: ValueRule
    max_mg_per_kg_24h: ValueRule
    max_mg_24h: ValueRule


class DrugDef(_Strict):
    id: DrugId
    name: Bilingual
    aliases: list[str]
    ingredient_markers: list[str]
    rules: DrugRules
    avoid_when_dehydrated: FlagRule | None = None

    def cite_ids(self) -> list[str]:
        ids: list[str] = []
        rules = [getattr(self.rules, field) for field in DrugRules.model_fields]
        if self.avoid_when_dehydrated is not None:
            rules.append(self.avoid_when_dehydrated)
        for rule in rules:
            ids.extend(cid for cid in rule.cite if cid not in ids)
        return ids


class NamedList(_Strict):
    names: list[str]
    cite: list[str]


class WeightBand(_Strict):
    below_months: float
    min_kg: float
    max_kg: float


class WeightBounds(_Strict):
    cite: list[str]
    bands: list[WeightBand]


class Bounds(_Strict):
    min: float
    max: float


class AntipyreticRules(_Strict):
    version: str
    corpus: str
    citations: dict[str, CitationDef]
    drugs: list[DrugDef]
    oral_form_suffixes: list[str]
    name_prefixes: list[str]
    not_for_children: NamedList
    alternating_warning_cite: list[str]
    weight_bounds: WeightBounds
    concentration_mg_per_ml: Bounds
    strength_mg_per_tablet: Bounds

    def drug(self, drug_id: DrugId) -> DrugDef:
        return next(d for d in self.drugs if d.id == drug_id)

    def citations_for(self, ids: Sequence[str]) -> list[Citation]:
        return [Citation(id=cid, **self.citations[cid].model_dump()) for cid in ids]


@lru_cache(maxsize=4)
def load_antipyretic_rules(path: Path = DATA_FILE) -> AntipyreticRules:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    rules = AntipyreticRules.model_validate(raw)
    cited = {cid for drug in rules.drugs for cid in drug.cite_ids()}
    cited |= (
        set(rules.not_for_children.cite) | set(rules.alternating_warning_cite) | set(rules.weight_bounds.cite)
    )
    unknown = cited - set(rules.citations)
    if unknown:
        raise ValueError(f"{path}: unknown citation ids {sorted(unknown)}")
    return rules


# ------------------------------------------------------------------------------------ contract


class GivenDose(BaseModel):
    """One dose already given, as logged in the diary."""

    drug: str  # as the parent named it: "布洛芬混悬液", "美林", "小儿氨酚黄那敏颗粒" …
    given_at: datetime
    mg: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class DoseWarning(BaseModel):
    code: str  # stable: alternating, hydration, contains_ingredient, other_medicine_in_history, …
    message: Bilingual


class DoseCheck(BaseModel):
    allowed: bool
    code: str  # stable: "ok" or the reason for refusal (too_soon, other_drug, weight_missing, …)
    drug: DrugId | None
    drug_name: Bilingual | None
    reason: Bilingual
    instead: Bilingual | None  # what to do instead when refused
    dose_mg_min: float | None = None
    dose_mg_max: float | None = None
    dose_ml_min: float | None = None
    dose_ml_max: float | None = None
    dose_tablets_min: float | None = None
    dose_tablets_max: float | None = None
    next_allowed_at: datetime | None = None
    doses_last_24h: int = 0
    mg_last_24h: float | None = None  # mg of this ingredient in the last 24 h, counting logged amounts only
    max_doses_24h: int | None = None
    warnings: list[DoseWarning] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    note: Bilingual


LABEL_NOTE = Bilingual(
    zh="以上仅为说明书规则核对，不是处方：请按所用药品说明书或遵医嘱使用，用药品自带的量具。",
    en="This checks label rules only and is not a prescription: follow the product label or your "
    "doctor, and use the measuring device that comes with the product.",
)
ASK_DOCTOR = Bilingual(
    zh="请咨询医生或药师。导诊只核对对乙酰氨基酚和布洛芬的说明书规则。",
    en="Please ask a doctor or pharmacist. Daozhen only checks label rules for paracetamol and ibuprofen.",
)
DANGER_SIGNS = Bilingual(
    zh="如孩子精神差、叫不醒、呼吸困难、抽搐或持续呕吐，请立即就医，危急时拨打120。",
    en="If the child is drowsy or hard to wake, struggling to breathe, has a seizure or keeps "
    "vomiting, seek care now; in an emergency call 120.",
)


# ------------------------------------------------------------------------------------ helpers


def _normalise(name: str) -> str:
    return "".join(name.split()).casefold()


def _strip_affixes(name: str, rules: AntipyreticRules) -> str:
    text = name.strip().casefold()
    for prefix in sorted(rules.name_prefixes, key=len, reverse=True):
        if text.startswith(prefix.casefold()):
            text = text[len(prefix) :].strip()
            break
    for suffix in sorted(rules.oral_form_suffixes, key=len, reverse=True):
        if text.endswith(suffix.casefold()):
            text = text[: -len(suffix)].strip()
            break
    return _normalise(text)


def resolve_drug(name: str, rules: AntipyreticRules | None = None) -> DrugId | None:
    """The single-ingredient, immediate-release drug a name refers to, else None."""
    rules = rules or load_antipyretic_rules()
    key = _strip_affixes(name, rules)
    for drug in rules.drugs:
        if key in {_normalise(alias) for alias in drug.aliases}:
            return drug.id
    return None


def ingredients_in(name: str, rules: AntipyreticRules | None = None) -> list[DrugId]:
    """Checked ingredients a product name contains (also combination products: 氨酚 → paracetamol)."""
    rules = rules or load_antipyretic_rules()
    resolved = resolve_drug(name, rules)
    if resolved is not None:
        return [resolved]
    text = _normalise(name)
    return [d.id for d in rules.drugs if any(_normalise(m) in text for m in d.ingredient_markers)]


def _ceil_to(value: float, step: float) -> float:
    return round(math.ceil(round(value / step, 9)) * step, 6)


def _floor_to(value: float, step: float) -> float:
    return round(math.floor(round(value / step, 9)) * step, 6)


def _fmt_time(at: datetime) -> str:
    return at.strftime("%m-%d %H:%M")


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}"


def _weight_band(age_months: float, rules: AntipyreticRules) -> WeightBand:
    for band in rules.weight_bounds.bands:
        if age_months < band.below_months:
            return band
    return rules.weight_bounds.bands[-1]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Refusal(Exception):
    def __init__(self, code: str, reason: Bilingual, instead: Bilingual | None) -> None:
        super().__init__(code)
        self.code, self.reason, self.instead = code, reason, instead
        self.fields: dict[str, Any] = {}


def _bad(code: str, zh: str, en: str, instead_zh: str, instead_en: str) -> _Refusal:
    return _Refusal(code, Bilingual(zh=zh, en=en), Bilingual(zh=instead_zh, en=instead_en))


def _coerce_history(history: Sequence[GivenDose | Mapping[str, Any]] | None) -> list[GivenDose]:
    doses: list[GivenDose] = []
    if history is not None and not isinstance(history, list | tuple):
        raise _bad(
            "bad_history",
            "用药记录格式无效，应为列表。",
            "The dose history must be a list of doses.",
            "请以列表形式提供用药记录（药名、时间、剂量）。",
            "Give the dose history as a list (medicine, time given, amount).",
        )
    for index, item in enumerate(history or []):
        try:
            doses.append(item if isinstance(item, GivenDose) else GivenDose.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise _bad(
                "bad_history",
                f"用药记录第{index + 1}条无效（{where}）。",
                f"Dose history entry {index + 1} is invalid ({where}: {first['msg']}).",
                "请核对药名、服药时间和剂量后重试。",
                "Check the medicine name, time given and amount, then try again.",
            ) from None
    return doses


def _refused(drug: DrugDef | None, refusal: _Refusal, rules: AntipyreticRules, **fields: Any) -> DoseCheck:
    return DoseCheck(
        allowed=False,
        code=refusal.code,
        drug=drug.id if drug else None,
        drug_name=drug.name if drug else None,
        reason=refusal.reason,
        instead=refusal.instead,
        citations=rules.citations_for(drug.cite_ids() if drug else ["corpus"]),
        note=LABEL_NOTE,
        **fields,
    )


def _other_drug(name: str, rules: AntipyreticRules) -> DoseCheck:
    contained = ingredients_in(name, rules)
    never = any(_normalise(n) in _normalise(name) for n in rules.not_for_children.names)
    warnings: list[DoseWarning] = []
    if never:
        reason = Bilingual(
            zh=f"“{name}”不适合儿童自行使用（说明书及指南均不建议儿童使用阿司匹林、安乃近、尼美舒利）。",
            en=f'"{name}" is not for children '
            "(aspirin, metamizole and nimesulide are not advised for children).",
        )
    elif contained:
        names_zh = "、".join(rules.drug(d).name.zh for d in contained)
        names_en = ", ".join(rules.drug(d).name.en for d in contained)
        reason = Bilingual(
            zh=f"“{name}”是复方或特殊剂型（含{names_zh}），不在核对范围内。",
            en=f'"{name}" is a combination or special form (contains {names_en}); '
            "it is outside what Daozhen checks.",
        )
        warnings.append(
            DoseWarning(
                code="contains_ingredient",
                message=Bilingual(
                    zh=f"它含有{names_zh}：不要再同时使用含相同成分的其他药，以免过量。",
                    en=f"It contains {names_en}: do not also give another product with the same "
                    "ingredient — doubling up causes overdoses.",
                ),
            )
        )
    else:
        reason = Bilingual(
            zh=f"“{name}”不是对乙酰氨基酚或布洛芬，导诊不提供其他药物的用药建议。",
            en=f'"{name}" is not paracetamol or ibuprofen; Daozhen gives no advice on other medicines.',
        )
    return DoseCheck(
        allowed=False,
        code="other_drug",
        drug=None,
        drug_name=None,
        reason=reason,
        instead=ASK_DOCTOR,
        warnings=warnings,
        citations=rules.citations_for(rules.not_for_children.cite),
        note=LABEL_NOTE,
    )


# ------------------------------------------------------------------------------------ the check


def check_dose(
    drug: str,
    weight_kg: float | None,
    age_months: float | None,
    history: Sequence[GivenDose | Mapping[str, Any]] | None,
    requested_at: datetime,
    *,
    concentration_mg_per_ml: float | None = None,
    mg_per_tablet: float | None = None,
    requested_mg: float | None = None,
    requested_ml: float | None = None,
    label_max_doses_24h: int | None = None,
    dehydration_signs: bool = False,
    rules: AntipyreticRules | None = None,
) -> DoseCheck:
    """May a dose of `drug` be given at `requested_at` under the label rules, and how much?

    `history` is every medicine given (any name; combination products count for their ingredient).
    `label_max_doses_24h` applies a stricter product label (e.g. 3 doses per 24 h).
    Never raises on bad input: it returns a refusal with a stable code and zh/en reason.
    """
    rules = rules or load_antipyretic_rules()
    drug_name = drug if isinstance(drug, str) else ""
    drug_id = resolve_drug(drug_name, rules) if drug_name.strip() else None
    if drug_id is None:
        if not drug_name.strip():
            refusal = _bad(
                "drug_missing",
                "没有说明要用哪种药。",
                "No medicine was named.",
                "请说明是对乙酰氨基酚还是布洛芬（看药盒上的成分）。",
                "Say whether it is paracetamol or ibuprofen (check the ingredients on the box).",
            )
            return _refused(None, refusal, rules)
        return _other_drug(drug_name, rules)
    spec = rules.drug(drug_id)
    try:
        return _check_known_drug(
            spec,
            weight_kg,
            age_months,
            history,
            requested_at,
            concentration_mg_per_ml=concentration_mg_per_ml,
            mg_per_tablet=mg_per_tablet,
            requested_mg=requested_mg,
            requested_ml=requested_ml,
            label_max_doses_24h=label_max_doses_24h,
            dehydration_signs=dehydration_signs,
            rules=rules,
        )
    except _Refusal as refusal:
        return _refused(spec, refusal, rules, **refusal.fields)


def _validate_inputs(
    spec: DrugDef,
    weight_kg: float | None,
    age_months: float | None,
    requested_at: datetime,
    doses: list[GivenDose],
    concentration_mg_per_ml: float | None,
    mg_per_tablet: float | None,
    label_max_doses_24h: int | None,
    rules: AntipyreticRules,
) -> tuple[float, float]:
    if not isinstance(requested_at, datetime):
        raise _bad(
            "bad_time",
            "缺少或无法识别用药时间。",
            "The time of the requested dose is missing or not a date-time.",
            "请提供准备用药的时间。",
            "Give the time the dose would be given.",
        )
    if any((d.given_at.tzinfo is None) != (requested_at.tzinfo is None) for d in doses):
        raise _bad(
            "bad_time",
            "用药记录的时间和本次时间一个带时区一个不带，无法比较。",
            "Dose times and the request time mix time-zone-aware and naive values.",
            "请统一使用同一种时间格式。",
            "Use one time convention for all doses.",
        )
    future = [d for d in doses if d.given_at > requested_at]
    if future:
        raise _bad(
            "history_in_future",
            f"有用药记录的时间（{_fmt_time(future[0].given_at)}）晚于本次用药时间，请核对。",
            f"A logged dose ({_fmt_time(future[0].given_at)}) is later than the requested time; "
            "please check.",
            "核对用药记录的时间后再查询。",
            "Correct the times in the dose log, then ask again.",
        )
    if age_months is None:
        raise _bad(
            "age_missing",
            "缺少孩子的年龄。",
            "The child's age is missing.",
            "请提供孩子的年龄（月龄或岁数），说明书按年龄限定可用范围。",
            "Give the child's age (months or years); labels set a minimum age.",
        )
    if not _is_number(age_months) or not 0 <= age_months <= rules.weight_bounds.bands[-1].below_months:
        raise _bad(
            "age_implausible",
            f"年龄“{age_months}”个月不合理，请核对。",
            f"Age {age_months!r} months is not plausible; please check.",
            "请核对孩子的月龄或岁数。",
            "Check the child's age in months or years.",
        )
    if weight_kg is None:
        raise _bad(
            "weight_missing",
            "缺少孩子的体重：退烧药剂量要按体重计算。",
            "The child's weight is missing: the dose is worked out from body weight.",
            "请先给孩子称体重（公斤），再按说明书上的体重表给药。",
            "Weigh the child (kg) first, then use the weight table on the label.",
        )
    band = _weight_band(float(age_months), rules)
    if not _is_number(weight_kg) or not band.min_kg <= weight_kg <= band.max_kg:
        raise _bad(
            "weight_implausible",
            f"体重 {weight_kg} 公斤与 {age_months:g} 个月的年龄不符"
            f"（合理范围约 {band.min_kg:g}–{band.max_kg:g} 公斤）。",
            f"Weight {weight_kg} kg does not fit an age of {age_months:g} months "
            f"(plausible range about {band.min_kg:g}-{band.max_kg:g} kg).",
            "请核对体重（单位是公斤吗？是不是斤？）和年龄后再查询。",
            "Check the weight (is it in kg, not pounds or jin?) and the age, then ask again.",
        )
    bounds = rules.concentration_mg_per_ml
    if concentration_mg_per_ml is not None and (
        not _is_number(concentration_mg_per_ml) or not bounds.min <= concentration_mg_per_ml <= bounds.max
    ):
        raise _bad(
            "bad_concentration",
            f"药液浓度 {concentration_mg_per_ml} mg/ml 不合理。",
            f"Concentration {concentration_mg_per_ml} mg/ml is not plausible.",
            "请看药盒上的规格（例如 5ml:100mg 即 20 mg/ml），换算成每毫升毫克数。",
            "Read the strength on the box (e.g. 100 mg per 5 ml = 20 mg/ml) and give it in mg per ml.",
        )
    tablet_bounds = rules.strength_mg_per_tablet
    if mg_per_tablet is not None and (
        not _is_number(mg_per_tablet) or not tablet_bounds.min <= mg_per_tablet <= tablet_bounds.max
    ):
        raise _bad(
            "bad_tablet_strength",
            f"每片含量 {mg_per_tablet} mg 不合理。",
            f"Tablet strength {mg_per_tablet} mg is not plausible.",
            "请看药盒上的规格（例如 0.1g 即 100 mg）。",
            "Read the strength on the box (e.g. 0.1 g = 100 mg).",
        )
    if label_max_doses_24h is not None and (
        not isinstance(label_max_doses_24h, int)
        or isinstance(label_max_doses_24h, bool)
        or not 1 <= label_max_doses_24h <= spec.rules.max_doses_24h.value
    ):
        raise _bad(
            "bad_label_limit",
            f"说明书每日次数 {label_max_doses_24h} 无效。",
            f"Label maximum of {label_max_doses_24h} doses per 24 h is not valid.",
            "请按药盒说明书上的“24小时内不超过几次”填写。",
            'Give the "no more than N doses in 24 hours" figure from the label.',
        )
    return float(weight_kg), float(age_months)


def _check_known_drug(
    spec: DrugDef,
    weight_kg: float | None,
    age_months: float | None,
    history: Sequence[GivenDose | Mapping[str, Any]] | None,
    requested_at: datetime,
    *,
    concentration_mg_per_ml: float | None,
    mg_per_tablet: float | None,
    requested_mg: float | None,
    requested_ml: float | None,
    label_max_doses_24h: int | None,
    dehydration_signs: bool,
    rules: AntipyreticRules,
) -> DoseCheck:
    r = spec.rules
    doses = _coerce_history(history)
    weight, age = _validate_inputs(
        spec,
        weight_kg,
        age_months,
        requested_at,
        doses,
        concentration_mg_per_ml,
        mg_per_tablet,
        label_max_doses_24h,
        rules,
    )
    name = spec.name

    if age < r.min_age_months.value:
        if spec.id is DrugId.paracetamol or age < rules.drug(DrugId.paracetamol).rules.min_age_months.value:
            instead = Bilingual(
                zh="3个月以下婴儿发烧要立即就医，不要自行用退烧药。",
                en="A baby under 3 months with a fever needs to see a doctor now; do not give fever medicine "
                "yourself.",
            )
        else:
            instead = Bilingual(
                zh="可按说明书考虑对乙酰氨基酚（3个月以上适用），或咨询医生。",
                en="Paracetamol (labelled from 3 months) may be considered as its label says, "
                "or ask a doctor.",
            )
        raise _Refusal(
            "below_min_age",
            Bilingual(
                zh=f"{name.zh}说明书适用于{r.min_age_months.value:g}个月以上，孩子现在{age:g}个月。",
                en=f"The {name.en} label is for {r.min_age_months.value:g} months and older; "
                f"the child is {age:g} months.",
            ),
            instead,
        )

    if dehydration_signs and spec.avoid_when_dehydrated and spec.avoid_when_dehydrated.value:
        raise _Refusal(
            "dehydration",
            Bilingual(
                zh="孩子有脱水迹象（尿少、口干、呕吐频繁）时不宜使用布洛芬。",
                en="Ibuprofen should be avoided while the child shows signs of dehydration "
                "(few wet nappies, dry mouth, repeated vomiting).",
            ),
            Bilingual(
                zh="少量多次补液，并尽快就医；3个月以上可按说明书考虑对乙酰氨基酚，或先咨询医生。",
                en="Give small, frequent drinks and see a doctor soon; from 3 months paracetamol may be "
                "considered as its label says, or ask a doctor first.",
            ),
        )

    # ---- dose range from weight, capped at the adult-equivalent single dose
    warnings: list[DoseWarning] = []
    cap = r.max_single_dose_mg.value
    low, high = weight * r.dose_mg_per_kg.min, weight * r.dose_mg_per_kg.max
    if high > cap:
        warnings.append(
            DoseWarning(
                code="adult_cap",
                message=Bilingual(
                    zh=f"按体重计算已超过成人单次量，单次不超过 {cap:g} mg。",
                    en=f"By weight this reaches the adult single dose; do not exceed {cap:g} mg per dose.",
                ),
            )
        )
    low, high = min(low, cap), min(high, cap)
    daily_max = min(weight * r.max_mg_per_kg_24h.value, r.max_mg_24h.value)
    max_doses = int(min(r.max_doses_24h.value, label_max_doses_24h or r.max_doses_24h.value))

    # ---- history: doses of this ingredient (also inside combination products) in the last 24 h
    window_start = requested_at - WINDOW_24H
    same: list[GivenDose] = []
    other_checked: list[GivenDose] = []
    for dose in doses:
        contained = ingredients_in(dose.drug, rules)
        if dose.given_at <= window_start:
            continue
        if spec.id in contained:
            same.append(dose)
            if resolve_drug(dose.drug, rules) is None:
                warnings.append(
                    DoseWarning(
                        code="contains_ingredient",
                        message=Bilingual(
                            zh=f"“{dose.drug}”含有{name.zh}，已计入24小时内的次数。",
                            en=f'"{dose.drug}" contains {name.en}; it is counted in the last 24 h.',
                        ),
                    )
                )
        elif contained:
            other_checked.append(dose)
        else:
            warnings.append(
                DoseWarning(
                    code="other_medicine_in_history",
                    message=Bilingual(
                        zh=f"记录中有“{dose.drug}”：请确认它不含{name.zh}，以免重复用药。",
                        en=f'The log lists "{dose.drug}": make sure it does not contain {name.en} too.',
                    ),
                )
            )
    same.sort(key=lambda d: d.given_at)
    count = len(same)
    known_mg = sum(d.mg for d in same if d.mg is not None)
    # None when a dose of this ingredient was logged without its amount: the total is unknown.
    mg_last_24h = None if any(d.mg is None for d in same) else round(known_mg, 1)

    next_allowed: datetime | None = None
    if same:
        next_allowed = same[-1].given_at + timedelta(hours=r.min_interval_hours.value)
        if count >= max_doses:
            next_allowed = max(next_allowed, same[-max_doses].given_at + WINDOW_24H)

    if other_checked:
        other = other_checked[-1]
        other_names = ingredients_in(other.drug, rules)
        other_name = rules.drug(other_names[0]).name
        since = requested_at - other.given_at
        warnings.append(
            DoseWarning(
                code="alternating",
                message=Bilingual(
                    zh=f"{_hours(since)}小时前用过{other_name.zh}。不要两种退烧药同时用，也不要常规交替使用；"
                    "只有孩子仍很难受、而前一种药还没到下次可用时间时才考虑换用，并咨询医生。",
                    en=f"{other_name.en.capitalize()} was given {_hours(since)} h ago. Do not give both "
                    "together or alternate them routinely; consider switching only if the child is still "
                    "distressed before the next dose of the first is due, and ask a doctor.",
                ),
            )
        )
    if spec.avoid_when_dehydrated and spec.avoid_when_dehydrated.value:
        warnings.append(
            DoseWarning(
                code="hydration",
                message=Bilingual(
                    zh="用布洛芬期间要让孩子多喝水；如果尿少、呕吐频繁或喝不进水，先停用并咨询医生。",
                    en="Keep the child drinking while using ibuprofen; if wet nappies are few, vomiting is "
                    "repeated or the child cannot drink, stop and ask a doctor.",
                ),
            )
        )

    fields: dict[str, Any] = {
        "doses_last_24h": count,
        "mg_last_24h": mg_last_24h,
        "max_doses_24h": max_doses,
        "next_allowed_at": next_allowed,
        "warnings": warnings,
        # the weight-based amount, shown with refusals too (what to give once allowed)
        **_dose_amounts(low, high, concentration_mg_per_ml, mg_per_tablet),
    }

    if count >= max_doses:
        assert next_allowed is not None  # count >= 1 here
        raise _refusal_with(
            fields,
            _Refusal(
                "max_doses_reached",
                Bilingual(
                    zh=f"24小时内已用{name.zh} {count} 次，说明书规定不超过 {max_doses} 次。",
                    en=f"{name.en.capitalize()} has been given {count} times in 24 h; "
                    f"the label allows at most {max_doses}.",
                ),
                Bilingual(
                    zh=f"现在不要再给{name.zh}，最早 {_fmt_time(next_allowed)} 后再按说明书使用。"
                    "可以少穿些、多喝水、让孩子休息；发热持续或孩子精神差请就医。",
                    en=f"Do not give more {name.en} now; the earliest is {_fmt_time(next_allowed)}, as the "
                    "label says. Light clothing, drinks and rest help; if the fever goes on or the child "
                    "seems unwell, see a doctor.",
                ),
            ),
        )
    if next_allowed is not None and next_allowed > requested_at:
        since = requested_at - same[-1].given_at
        raise _refusal_with(
            fields,
            _Refusal(
                "too_soon",
                Bilingual(
                    zh=f"距上次用{name.zh}仅 {_hours(since)} 小时，说明书要求至少间隔 "
                    f"{r.min_interval_hours.value:g} 小时。",
                    en=f"Only {_hours(since)} h since the last {name.en}; the label requires at least "
                    f"{r.min_interval_hours.value:g} h between doses.",
                ),
                Bilingual(
                    zh=f"请等到 {_fmt_time(next_allowed)} 之后再按说明书给药。"
                    "期间可少穿些、多喝水、让孩子休息；如孩子仍很难受，请咨询医生或药师。",
                    en=f"Wait until {_fmt_time(next_allowed)} and then follow the label. Meanwhile light "
                    "clothing, drinks and rest help; if the child is still very uncomfortable, ask a doctor "
                    "or pharmacist.",
                ),
            ),
        )

    remaining = daily_max - known_mg
    if remaining < low:
        no_dose = dict.fromkeys(_dose_amounts(low, high, concentration_mg_per_ml, mg_per_tablet))
        raise _refusal_with(
            fields | no_dose,
            _Refusal(
                "daily_limit_reached",
                Bilingual(
                    zh=f"24小时内已用{name.zh} {known_mg:g} mg，再用将超过每日上限 {daily_max:g} mg。",
                    en=f"{known_mg:g} mg of {name.en} given in 24 h; another dose would exceed the daily "
                    f"limit of {daily_max:g} mg.",
                ),
                Bilingual(
                    zh="24小时内不要再给这种药；发热持续或孩子精神差请就医。",
                    en="Give no more of this medicine within 24 h; if the fever goes on or the child seems "
                    "unwell, see a doctor.",
                ),
            ),
        )
    high = min(high, remaining)

    fields.update(_dose_amounts(low, high, concentration_mg_per_ml, mg_per_tablet))
    mg_min, mg_max = fields["dose_mg_min"], fields["dose_mg_max"]
    if mg_per_tablet is not None and fields.get("dose_tablets_min") is None:
        warnings.append(
            DoseWarning(
                code="no_tablet_step_fits",
                message=Bilingual(
                    zh=f"每片 {mg_per_tablet:g} mg 的片剂按整片或半片都凑不出 {mg_min:g}–{mg_max:g} mg，"
                    "请改用儿童液体剂型，或咨询药师。",
                    en=f"No whole or half {mg_per_tablet:g} mg tablet gives {mg_min:g}-{mg_max:g} mg; "
                    "use a children's liquid form or ask a pharmacist.",
                ),
            )
        )

    requested = requested_mg
    if requested_ml is not None:
        if concentration_mg_per_ml is None or not _is_number(requested_ml) or requested_ml <= 0:
            raise _refusal_with(
                fields,
                _bad(
                    "concentration_missing" if concentration_mg_per_ml is None else "bad_request",
                    "要核对毫升数，需要知道药液浓度（看药盒上的规格）。"
                    if concentration_mg_per_ml is None
                    else f"请求的剂量 {requested_ml} ml 无效。",
                    "To check a volume, the product strength is needed (see the box)."
                    if concentration_mg_per_ml is None
                    else f"Requested amount {requested_ml} ml is not valid.",
                    "请提供药液浓度（mg/ml），或直接按说明书体重表给药。",
                    "Give the strength (mg/ml), or use the weight table on the label.",
                ),
            )
        requested = requested_ml * concentration_mg_per_ml
    if requested is not None:
        if not _is_number(requested) or requested <= 0:
            raise _refusal_with(
                fields,
                _bad(
                    "bad_request",
                    f"请求的剂量 {requested} mg 无效。",
                    f"Requested amount {requested} mg is not valid.",
                    "请按说明书体重表给药。",
                    "Use the weight table on the label.",
                ),
            )
        if requested > mg_max + 1e-6:
            range_ml = (
                f"（{fields['dose_ml_min']:g}–{fields['dose_ml_max']:g} ml）"
                if concentration_mg_per_ml is not None
                else ""
            )
            range_ml_en = (
                f" ({fields['dose_ml_min']:g}-{fields['dose_ml_max']:g} ml)"
                if concentration_mg_per_ml is not None
                else ""
            )
            raise _refusal_with(
                fields,
                _Refusal(
                    "dose_above_limit",
                    Bilingual(
                        zh=f"本次 {requested:g} mg 超过了按体重和说明书计算的上限 {mg_max:g} mg。",
                        en=f"{requested:g} mg is above the label limit for this weight ({mg_max:g} mg).",
                    ),
                    Bilingual(
                        zh=f"按说明书体重表，本次应为 {mg_min:g}–{mg_max:g} mg{range_ml}；"
                        "请用药品自带量具，或遵医嘱。",
                        en=f"By the label's weight table this dose is {mg_min:g}-{mg_max:g} mg"
                        f"{range_ml_en}; use the product's own measuring device, or follow your doctor.",
                    ),
                ),
            )
        if requested < mg_min - 1e-6:
            warnings.append(
                DoseWarning(
                    code="below_usual_dose",
                    message=Bilingual(
                        zh=f"{requested:g} mg 低于按体重的常用量 {mg_min:g}–{mg_max:g} mg，"
                        "可能效果不佳；请按说明书。",
                        en=f"{requested:g} mg is below the usual {mg_min:g}-{mg_max:g} mg for this weight "
                        "and may not help much; follow the label.",
                    ),
                )
            )

    dose_text_zh = f"{mg_min:g}–{mg_max:g} mg"
    dose_text_en = f"{mg_min:g}-{mg_max:g} mg"
    if "dose_ml_min" in fields:
        dose_text_zh += f"（{fields['dose_ml_min']:g}–{fields['dose_ml_max']:g} ml）"
        dose_text_en += f" ({fields['dose_ml_min']:g}-{fields['dose_ml_max']:g} ml)"
    return DoseCheck(
        allowed=True,
        code="ok",
        drug=spec.id,
        drug_name=name,
        reason=Bilingual(
            zh=f"按说明书规则，现在可以用{name.zh}，本次 {dose_text_zh}；两次至少间隔 "
            f"{r.min_interval_hours.value:g} 小时，24小时内不超过 {max_doses} 次。{DANGER_SIGNS.zh}",
            en=f"By the label rules {name.en} may be given now: {dose_text_en}; at least "
            f"{r.min_interval_hours.value:g} h between doses, no more than {max_doses} doses in 24 h. "
            f"{DANGER_SIGNS.en}",
        ),
        instead=None,
        citations=rules.citations_for(spec.cite_ids()),
        note=LABEL_NOTE,
        **fields,
    )


def _dose_amounts(
    low: float, high: float, concentration_mg_per_ml: float | None, mg_per_tablet: float | None
) -> dict[str, float | None]:
    """mg range rounded inwards (never above the limit), and ml / half-tablet steps inside it."""
    mg_min, mg_max = _ceil_to(low, 1), _floor_to(high, 1)
    mg_min = min(mg_min, mg_max)  # a sub-milligram range after rounding
    amounts: dict[str, float | None] = {"dose_mg_min": mg_min, "dose_mg_max": mg_max}
    if concentration_mg_per_ml is not None:
        ml_min = _ceil_to(mg_min / concentration_mg_per_ml, 0.1)
        ml_max = _floor_to(mg_max / concentration_mg_per_ml, 0.1)
        amounts.update(dose_ml_min=min(ml_min, ml_max), dose_ml_max=ml_max)
    if mg_per_tablet is not None:
        steps = [k / 2 for k in range(1, 41) if mg_min <= k / 2 * mg_per_tablet <= mg_max]
        amounts.update(
            dose_tablets_min=steps[0] if steps else None, dose_tablets_max=steps[-1] if steps else None
        )
    return amounts


def _refusal_with(fields: dict[str, Any], refusal: _Refusal) -> _Refusal:
    """Attach what is already known (dose counts, next time, warnings) to a refusal."""
    refusal.fields = fields
    return refusal
