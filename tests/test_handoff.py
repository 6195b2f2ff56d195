"""Clinician handoff (tools/handoff.py): SBAR built from a real ConversationSession run stored by
server/store.py — level, red flags, rule ids and versions come from the engine's recorded decision,
never from prose — and its FHIR R4 export (Bundle of type document with a Composition)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assistant.followup import FollowUpConversation, answer, handoff_inputs, load_plans
from assistant.session import ConversationSession
from server.store import Decision, SessionStore
from tools.handoff import SBAR, MeasuredReading, build_sbar, readings_from_facts, sbar_to_fhir
from tools.triage_models import Facts, Level, VitalSigns

XHTML = "{http://www.w3.org/1999/xhtml}"


def _run_chat(store: SessionStore, messages: list[str]) -> ConversationSession:
    """Drive a real session turn by turn and record it like the websocket server does."""
    session = ConversationSession()
    for text in messages:
        reply = session.handle_user_message(text)
        decision = Decision(session.last_result, text) if session.last_result else None
        store.record_turn(
            session.session_id, session.to_dict(), [("user", text), ("assistant", reply.text)], decision
        )
    return session


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "chat.sqlite3")


def _sbar(store: SessionStore, session: ConversationSession, lang: str = "zh") -> SBAR:
    sid = session.session_id
    return build_sbar(
        store.messages(sid),
        store.decisions(sid),
        session.facts,
        readings_from_facts(session.facts),
        lang,  # type: ignore[arg-type]
        now=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
    )


def test_sbar_of_a_chest_pain_chat_carries_the_engines_decision(store: SessionStore) -> None:
    session = _run_chat(store, ["我爸爸65岁，今天早上胸口压着疼，出冷汗"])
    result = session.last_result
    assert result is not None and result.level == Level.emergency_ambulance
    sbar = _sbar(store, session)

    a = sbar.assessment
    assert a.level == Level.emergency_ambulance and a.level_label == "立即拨打120"
    assert "RF-CARD-01" in a.rule_ids and {f.rule_id for f in a.red_flags} >= {"RF-CARD-01"}
    assert a.rule_ids == store.decisions(session.session_id)[-1].rule_ids  # the audit row, verbatim
    assert a.engine_version == result.engine_version and a.knowledge_version == result.knowledge_version
    assert result.engine_version in a.text and "RF-CARD-01" in a.text

    assert {"field": "age_months", "label": "年龄", "value": "65岁"} in [
        f.model_dump() for f in sbar.background.facts
    ]
    assert sbar.background.statements == ["我爸爸65岁，今天早上胸口压着疼，出冷汗"]
    assert "胸口压着疼" in sbar.situation.text and "立即拨打120" in sbar.situation.text

    r = sbar.recommendation
    assert r.call_120 and r.care_setting is not None and r.care_setting.value == "ambulance_ed"
    assert "120" in r.text and r.departments and r.departments[0].id == "emergency"

    assert ("redflags-adult", "chest-pain") in {(c.doc_id, c.section) for c in sbar.sources}
    assert [s.code for s in sbar.sections] == ["S", "B", "A", "R"]
    assert sbar.disclaimer and "诊断" in sbar.disclaimer


def test_sbar_in_english_for_a_chinese_chat_translates_labels_not_the_patients_words(
    store: SessionStore,
) -> None:
    session = _run_chat(store, ["我爸爸65岁，今天早上胸口压着疼，出冷汗"])
    sbar = _sbar(store, session, "en")
    assert sbar.assessment.level_label == "Call 120 now"
    names = [f.name for f in sbar.assessment.red_flags]
    assert names and all(not any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    assert sbar.sections[0].title.startswith("S ") and "Situation" in sbar.sections[0].title
    assert "胸口压着疼" in sbar.background.text  # the patient's own words stay as said
    assert {"label": "Age", "value": "65 years"}.items() <= sbar.background.facts[0].model_dump().items()


def test_the_most_urgent_decision_wins_over_a_later_calmer_one(store: SessionStore) -> None:
    session = _run_chat(store, ["我胸口压着疼，出冷汗", "现在好多了，不疼了"])
    decisions = store.decisions(session.session_id)
    assert len(decisions) == 2
    sbar = _sbar(store, session)
    assert sbar.assessment.level in (Level.emergency_ambulance, Level.emergency)
    assert [h["level"] for h in sbar.assessment.history] == [d.level for d in decisions]
    assert sbar.situation.latest == "现在好多了，不疼了"
    if decisions[-1].level != sbar.assessment.level:
        assert sbar.assessment.latest_level == decisions[-1].level and "最近一次评估" in sbar.assessment.text


def test_a_conversation_without_a_decision_is_not_assessed() -> None:
    sbar = build_sbar([{"role": "user", "text": "你好", "at": None}], [], None, None, "en")
    assert sbar.assessment.level is None and sbar.assessment.level_label == "not yet assessed"
    assert not sbar.recommendation.call_120 and "120" in sbar.recommendation.text


def test_follow_up_conversation_sbar_has_readings_and_follow_up_rules() -> None:
    conversation = FollowUpConversation(plan_id="hypertension_checkin", patient_id="p-1")
    at = datetime(2026, 11, 24, 0, 5, tzinfo=UTC)
    answer(conversation, "htn.bp", "高压185，低压112", "zh", check_id="morning.1", now=at)
    inputs = handoff_inputs(conversation)
    sbar = build_sbar(
        inputs["turns"],
        inputs["decisions"],
        inputs["facts"],
        inputs["readings"],
        "zh",
        extra_sources=load_plans().plan("hypertension_checkin").sources(),
    )
    assert sbar.assessment.level == Level.urgent
    assert {"VS-BP-03", "HTN-URG-02"} <= set(sbar.assessment.rule_ids)
    assert sbar.background.readings[0].systolic == 185 and "185/112 mmHg" in sbar.background.text
    assert "185/112" in sbar.recommendation.text  # a reading needing attention is called out
    assert ("chronic-hypertension", "urgent-referral") in {(c.doc_id, c.section) for c in sbar.sources}


# --------------------------------------------------------------------------------------------
# FHIR
# --------------------------------------------------------------------------------------------


def _resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_fhir_document_bundle_has_a_complete_composition(store: SessionStore) -> None:
    session = _run_chat(store, ["我爸爸65岁，今天早上胸口压着疼，出冷汗"])
    sbar = _sbar(store, session)
    bundle = sbar_to_fhir(sbar, "session:" + session.session_id)

    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "document"
    assert bundle["identifier"]["value"] and bundle["timestamp"] == sbar.generated_at
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"  # a document starts with its Composition
    assert composition["status"] == "final" and composition["date"] == sbar.generated_at
    assert composition["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "34133-9",
        "display": "Summary of episode note",
    }
    assert composition["title"] and composition["author"]
    sections = composition["section"]
    assert [s["code"]["coding"][0]["code"] for s in sections[:4]] == ["S", "B", "A", "R"]
    assert sections[4]["code"]["coding"][0]["code"] == "sources"
    for section in sections:
        assert section["text"]["status"] == "generated"
        div = ET.fromstring(section["text"]["div"])  # well-formed XHTML
        assert div.tag == f"{XHTML}div"

    resources = _resources(bundle)
    for ref in _references(bundle):
        assert ref in resources, f"unresolved reference {ref}"
    assert resources[composition["subject"]["reference"]]["resourceType"] == "Patient"
    device = resources[composition["author"][0]["reference"]]
    assert device["resourceType"] == "Device"
    assert {v["value"] for v in device["version"]} == {
        sbar.assessment.engine_version,
        sbar.assessment.knowledge_version,
    }
    level_obs = resources[sections[2]["entry"][0]["reference"]]
    assert level_obs["valueCodeableConcept"]["coding"][0]["code"] == "emergency_ambulance"
    assert "RF-CARD-01" in {c["code"] for c in level_obs["method"]["coding"]}


def test_fhir_narrative_escapes_what_the_patient_typed() -> None:
    nasty = "<script>alert('x')</script> & <b>胸痛</b>"
    sbar = build_sbar([{"role": "user", "text": nasty}], [], None, None, "zh")
    bundle = sbar_to_fhir(sbar, "p-1")
    divs = [s["text"]["div"] for s in bundle["entry"][0]["resource"]["section"]]
    joined = "".join(divs)
    assert "<script" not in joined and "<b>" not in joined
    assert "&lt;script&gt;" in joined and "&amp;" in joined
    text = "".join("".join(ET.fromstring(d).itertext()) for d in divs)
    assert "<script>alert('x')</script>" in text  # escaped, not lost


def test_readings_become_observations_referenced_from_background() -> None:
    readings = [
        MeasuredReading(
            kind="bp", systolic=150, diastolic=95, measured_at=datetime(2026, 11, 24, tzinfo=UTC)
        ),
        MeasuredReading(kind="glucose", mmol_l=7.0, text="126 mg/dL", note="converted from mg/dL"),
    ]
    facts = Facts(age_months=60 * 12, vitals=VitalSigns(systolic_bp=150, diastolic_bp=95))
    sbar = build_sbar([], [], facts, readings, "en")
    bundle = sbar_to_fhir(sbar, "p-9")
    resources = _resources(bundle)
    background = bundle["entry"][0]["resource"]["section"][1]
    observations = [resources[e["reference"]] for e in background["entry"]]
    bp, glucose = observations
    assert bp["code"]["coding"][0]["code"] == "85354-9"
    assert {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in bp["component"]} == {
        "8480-6": 150,
        "8462-4": 95,
    }
    assert bp["component"][0]["valueQuantity"]["code"] == "mm[Hg]"
    assert glucose["valueQuantity"] == {
        "value": 7.0,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert "126 mg/dL" in glucose["note"][0]["text"]
    assert bp["subject"] == bundle["entry"][0]["resource"]["subject"]
