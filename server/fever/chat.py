"""A parent's message in their own words ("宝宝38度5，吃了布洛芬两小时了还没退，精神还行") recorded in
the diary: the reading, the dose already given and the symptoms, then graded and answered.

The words are read by the deterministic extractors (tools/); nothing here guesses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from assistant.agent.fever_tools import dose_mention
from server.fever.models import DoseIn, ReadingIn, SymptomIn, _Body
from server.fever.service import Account, FeverService, Outcome
from tools.fact_extraction import extract_facts


class MessageIn(_Body):
    text: str = Field(min_length=1, max_length=2000)


def record_message(service: FeverService, account: Account, child_id: str, body: MessageIn) -> Outcome:
    lang = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in body.text) else "en"
    recorded: dict[str, Any] = {}
    events: list[Any] = []
    last: Outcome | None = None
    facts = extract_facts(body.text, lang=lang).facts
    mention = dose_mention(body.text)
    if mention is not None:
        drug, hours_ago = mention
        given_at = service.now() - timedelta(hours=hours_ago or 0)
        # a dose already given is a fact to record; its label check comes back as a warning
        last = service.add_dose(account, child_id, DoseIn(drug=drug, time=given_at), already_given=True)
        recorded["dose"] = last.data["dose"]
        recorded["dose_check"] = last.data["check"]
        events += last.events
    if facts.vitals.temperature_c is not None:
        last = service.add_reading(account, child_id, ReadingIn(value=facts.vitals.temperature_c, unit="C"))
        recorded["reading"] = last.data["reading"]
        events += last.events
    last = service.add_symptom(account, child_id, SymptomIn(text=body.text))
    recorded["symptom"] = last.data["entry"]
    events += last.events
    grade = last.data["grade"]
    reply = [
        f"{grade['label']}。{grade['meaning']}" if lang == "zh" else f"{grade['label']}. {grade['meaning']}"
    ]
    if grade.get("number_statement"):
        reply.append(grade["number_statement"])
    reply.append(grade["remeasure"]["advice"])
    check = recorded.get("dose_check")
    if check and not check["allowed"]:
        reply.append(check["reason"][lang])
    return Outcome({"recorded": recorded, "grade": grade, "reply": "\n".join(reply)}, events, 201)
