"""The pre-consultation form (预问诊单) built from a child's diary, and its FHIR R4 export.

build_form(diary, grade, now, note) -> dict     a snapshot: what the doctor sees is what was sent
fhir_bundle(form_row) -> dict                   Bundle (collection): Patient, QuestionnaireResponse,
                                                one Observation per reading (LOINC 8310-5, UCUM Cel)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from server.fever.store import Row, iso, parse_iso
from tools.fever import load_fever_rules

FORM_VERSION = 1
QUESTIONNAIRE = "urn:daozhen:questionnaire:fever-preconsultation|1"
COLOUR_SYSTEM = "urn:daozhen:fever-colour"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
# SNOMED CT body structures for the measurement sites
SITE_CODES: dict[str, tuple[str, str]] = {
    "axillary": ("91470000", "Axillary region structure"),
    "ear": ("42859004", "Tympanic membrane structure"),
    "forehead": ("52795006", "Forehead structure"),
    "oral": ("74262004", "Oral cavity structure"),
    "rectal": ("34402009", "Rectum structure"),
}
COLOUR_NAMES = {"green": ("绿色", "green"), "orange": ("橙色", "orange"), "red": ("红色", "red")}


@dataclass(frozen=True)
class Diary:
    child: Row
    readings: list[Row]
    doses: list[Row]
    symptoms: list[Row]
    colour_changes: list[Row]


def age_months(birth_date: str, at: datetime) -> float:
    born = date.fromisoformat(birth_date)
    days = (at.astimezone().date() - born).days
    return round(max(days, 0) * 12 / 365.25, 2)


def age_text(months: float) -> dict[str, str]:
    # months computed from dates carry float noise (23.98 on the 2nd birthday): round to a day
    months = int(months + 1 / 30.4) if months >= 1 else months
    if months < 1:
        days = round(months * 365.25 / 12)
        return {"zh": f"{days}天", "en": f"{days} days"}
    if months < 24:
        return {"zh": f"{int(months)}个月", "en": f"{int(months)} months"}
    years = int(months // 12)
    rest = int(months - years * 12)
    return {"zh": f"{years}岁{rest}个月" if rest else f"{years}岁", "en": f"{years} y {rest} m"}


def _is_fever(reading: Row) -> bool:
    rules = load_fever_rules()
    offset = rules.sites[reading["site"] or "unknown"].offset
    return bool(reading["value_c"] + offset >= rules.fever_core_c)


def _episode(readings: list[Row]) -> list[Row]:
    """Readings of the latest fever episode: back from the last fever reading to the first one
    not separated from it by a fever-free stretch (tools.fever's trend rule: 48 h, normal readings)."""
    fever_idx = [i for i, r in enumerate(readings) if _is_fever(r)]
    if not fever_idx:
        return []
    free_hours = load_fever_rules().trends.fever_free_hours
    start = fever_idx[-1]
    for earlier in reversed(fever_idx[:-1]):
        gap = parse_iso(readings[start]["measured_at"]) - parse_iso(readings[earlier]["measured_at"])
        if gap.total_seconds() / 3600 >= free_hours and start - earlier > 1:
            break  # normal readings in between and long enough: an earlier, separate fever
        start = earlier
    return readings[start:]


def _pattern(readings: list[Row], episode: list[Row], grade: dict[str, Any] | None) -> dict[str, Any]:
    trends = [t["message"] for t in (grade or {}).get("trends", [])]
    if not episode:
        code, zh, en = "no_fever", "记录中没有发热读数", "no fever reading in the diary"
    elif len(episode) == 1:
        code, zh, en = "single", "只有一次发热读数", "a single fever reading"
    elif all(_is_fever(r) for r in episode):
        code, zh, en = "continuous", "每次测量都在发热", "fever at every reading"
    else:
        code, zh, en = (
            "intermittent",
            "发热时有时无（其间有正常读数）",
            "fever comes and goes (normal readings between)",
        )
    return {"code": code, "text": {"zh": zh, "en": en}, "trends": trends, "readings": len(readings)}


def _reading_json(reading: Row) -> dict[str, Any]:
    return {
        "reading_id": reading["reading_id"],
        "value_c": reading["value_c"],
        "site": reading["site"],
        "time": reading["measured_at"],
        "source": reading["source"],
    }


def build_form(diary: Diary, grade: dict[str, Any] | None, now: datetime, note: str | None) -> dict[str, Any]:
    child = diary.child
    months = age_months(child["birth_date"], now)
    episode = _episode(diary.readings)
    peak = max(episode, key=lambda r: (r["value_c"], r["measured_at"])) if episode else None
    latest = diary.readings[-1] if diary.readings else None
    onset: dict[str, Any] = {"time": None, "source": None}
    if episode:
        onset = {"time": episode[0]["measured_at"], "source": "first_fever_reading"}
    elif diary.symptoms:
        onset = {"time": diary.symptoms[0]["noted_at"], "source": "first_symptom"}
    return {
        "version": FORM_VERSION,
        "title": {"zh": "发热预问诊单", "en": "Fever pre-consultation form"},
        "created_at": iso(now),
        "child": {
            "child_id": child["child_id"],
            "name": child["name"],
            "birth_date": child["birth_date"],
            "sex": child["sex"],
            "age_months": months,
            "age_text": age_text(months),
        },
        "onset": onset,
        "peak": _reading_json(peak) if peak else None,
        "latest": _reading_json(latest) if latest else None,
        "fever_days": (grade or {}).get("fever_days"),
        "pattern": _pattern(diary.readings, episode, grade),
        "readings": [_reading_json(r) for r in diary.readings],
        "symptoms": [{"time": s["noted_at"], "text": s["text"]} for s in diary.symptoms],
        "doses": [
            {"drug": d["drug"], "drug_id": d["drug_id"], "mg": d["mg"], "ml": d["ml"], "time": d["given_at"]}
            for d in diary.doses
        ],
        "weight_kg": child["weight_kg"],
        "allergies": child["allergies"],
        "conditions": child["conditions"],
        "colour_history": [
            {"colour": c["colour"], "call_120": bool(c["call_120"]), "label": c["label"], "time": c["at"]}
            for c in diary.colour_changes
        ],
        "current": _current(grade),
        "note": note,
    }


def _current(grade: dict[str, Any] | None) -> dict[str, Any] | None:
    if grade is None:
        return None
    return {
        "colour": grade["colour"],
        "call_120": grade["call_120"],
        "label": grade["label"],
        "meaning": grade["meaning"],
        "features": [f["name"] for f in grade["features"]],
        "disclaimer": grade["disclaimer"],
    }


# =============================================================================== FHIR R4


def _urn(form_id: str, part: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'daozhen:fever:{form_id}:{part}')}"


def _celsius(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "Cel", "system": UCUM, "code": "Cel"}


def _item(link_id: str, text: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": link_id, "text": text}
    if answers:
        item["answer"] = answers
    return item


def _group(link_id: str, text: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    group: dict[str, Any] = {"linkId": link_id, "text": text}
    if items:
        group["item"] = items
    return group


def _colour_coding(colour: str) -> dict[str, Any]:
    zh, en = COLOUR_NAMES[colour]
    return {"valueCoding": {"system": COLOUR_SYSTEM, "code": colour, "display": f"{zh} / {en}"}}


def _questionnaire_items(form: dict[str, Any]) -> list[dict[str, Any]]:
    peak = form["peak"]
    peak_answers = []
    if peak:
        peak_answers.append(
            {
                "valueQuantity": _celsius(peak["value_c"]),
                "item": [
                    _item("peak.time", "测量时间 / Measured at", [{"valueDateTime": peak["time"]}]),
                    _item("peak.site", "部位 / Site", [{"valueString": peak["site"] or "unknown"}]),
                ],
            }
        )
    doses = [
        _group(
            "dose",
            "用药 / Dose",
            [
                _item("dose.drug", "药名 / Medicine", [{"valueString": d["drug"]}]),
                _item("dose.time", "时间 / Given at", [{"valueDateTime": d["time"]}]),
                *(
                    [_item("dose.amount", "剂量 / Amount", [{"valueQuantity": _mg(d["mg"])}])]
                    if d["mg"] is not None
                    else []
                ),
            ],
        )
        for d in form["doses"]
    ]
    history = [
        _group(
            "colour_change",
            "颜色变化 / Colour change",
            [
                _item("colour_change.colour", "颜色 / Colour", [_colour_coding(c["colour"])]),
                _item("colour_change.time", "时间 / At", [{"valueDateTime": c["time"]}]),
            ],
        )
        for c in form["colour_history"]
    ]
    weight = form["weight_kg"]
    items = [
        _item(
            "onset",
            "发热开始时间 / Fever onset",
            [{"valueDateTime": form["onset"]["time"]}] if form["onset"]["time"] else [],
        ),
        _item("peak", "最高体温 / Peak temperature", peak_answers),
        _item(
            "pattern",
            "热型 / Fever pattern",
            [{"valueString": form["pattern"]["text"]["zh"] + " / " + form["pattern"]["text"]["en"]}],
        ),
        _item(
            "symptoms",
            "伴随症状 / Symptoms",
            [{"valueString": f"{s['time']} {s['text']}"} for s in form["symptoms"]],
        ),
        _group("doses", "退烧药 / Fever medicines given", doses),
        _item(
            "weight",
            "体重 / Weight",
            [{"valueQuantity": {"value": weight, "unit": "kg", "system": UCUM, "code": "kg"}}]
            if weight
            else [],
        ),
        _item("allergies", "过敏史 / Allergies", [{"valueString": a} for a in form["allergies"]]),
        _item(
            "conditions", "基础疾病 / Underlying conditions", [{"valueString": c} for c in form["conditions"]]
        ),
        _group("colour_history", "预警颜色变化 / Colour history", history),
    ]
    if form["current"]:
        items.append(
            _item("current_colour", "当前预警 / Current colour", [_colour_coding(form["current"]["colour"])])
        )
    if form["note"]:
        items.append(_item("note", "家长补充 / Parent's note", [{"valueString": form["note"]}]))
    return items


def _mg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mg", "system": UCUM, "code": "mg"}


def _observation(form_id: str, patient: str, reading: dict[str, Any]) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _urn(form_id, f"reading:{reading['reading_id']}").removeprefix("urn:uuid:"),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}],
            "text": "Body temperature",
        },
        "subject": {"reference": patient},
        "effectiveDateTime": reading["time"],
        "valueQuantity": _celsius(reading["value_c"]),
    }
    site = reading["site"]
    if site in SITE_CODES:
        code, display = SITE_CODES[site]
        observation["bodySite"] = {
            "coding": [{"system": SNOMED, "code": code, "display": display}],
            "text": site,
        }
    if reading["source"] == "ble":
        observation["method"] = {"text": "Bluetooth Health Thermometer (GATT 0x1809 / 0x2A1C)"}
    return observation


def fhir_bundle(form_row: Row) -> dict[str, Any]:
    """FHIR R4 Bundle of type collection for a stored form (status completed once sent)."""
    form, form_id = form_row["form"], form_row["form_id"]
    child = form["child"]
    patient_urn = _urn(form_id, "patient")
    patient = {
        "resourceType": "Patient",
        "id": patient_urn.removeprefix("urn:uuid:"),
        "identifier": [{"system": "urn:daozhen:child", "value": child["child_id"]}],
        "name": [{"text": child["name"]}],
        "gender": child["sex"] or "unknown",
        "birthDate": child["birth_date"],
    }
    response_urn = _urn(form_id, "questionnaire-response")
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": response_urn.removeprefix("urn:uuid:"),
        "identifier": {"system": "urn:daozhen:fever-form", "value": form_id},
        "questionnaire": QUESTIONNAIRE,
        "status": "completed" if form_row["status"] == "sent" else "in-progress",
        "subject": {"reference": patient_urn},
        "authored": form_row["sent_at"] or form["created_at"],
        "item": _questionnaire_items(form),
    }
    entries = [
        {"fullUrl": patient_urn, "resource": patient},
        {"fullUrl": response_urn, "resource": response},
    ]
    for reading in form["readings"]:
        observation = _observation(form_id, patient_urn, reading)
        entries.append({"fullUrl": f"urn:uuid:{observation['id']}", "resource": observation})
    return {
        "resourceType": "Bundle",
        "id": _urn(form_id, "bundle").removeprefix("urn:uuid:"),
        "type": "collection",
        "timestamp": form_row["sent_at"] or form["created_at"],
        "entry": entries,
    }
