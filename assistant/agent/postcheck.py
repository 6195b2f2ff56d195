"""Post-check of an LLM draft against the clinical rules: no diagnosis stated as fact, no
prescription, nothing that contradicts the engine's level. A failing draft is replaced."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.triage_models import Level

_DIAGNOSIS = re.compile(
    r"你(得|患)(了|的是)|确诊(为|是|了)|诊断(为|是)|肯定是.{0,8}(病|炎|症|癌|梗)|就是.{0,6}(病|炎|症|癌)了|"
    r"\byou (have|'ve got|are suffering from) (a |an )?\w+ ?"
    r"(disease|infection|itis|cancer|syndrome|attack|stroke)|"
    r"\b(the )?diagnosis is\b|\bit is definitely\b|\bthis is (definitely|certainly) (a |an )?\w+|"
    r"\b(a |the )?(common |typical |classic )?(symptom|sign)s? of (a |an )?\w+|"
    r"\bwhich is a (\w+ ){0,2}condition|"
    r"这是.{0,8}(病|炎|症)的(症状|表现)|(属于|应该是|考虑是).{0,6}(病|炎|症|癌)"
)
_PRESCRIPTION = re.compile(
    r"\d+(\.\d+)?\s*(mg|毫克|ml|毫升|片|粒|袋|g\b)|"
    r"(开|服用|吃|用|take|prescrib\w*|use)\s*.{0,8}(抗生素|阿莫西林|头孢|左氧|激素|antibiotic|amoxicillin|cef\w+|steroid)"
)
_TOO_RELAXED = re.compile(
    r"不(用|必|需要)(去)?(看|就)?(医|医院|急诊)|在家(观察|休息)就(行|可以|好)|没(什么)?(大)?事|不要紧|不严重|"
    r"nothing to worry|no need to (see|go|visit)|(just|simply) rest at home|not serious|you can wait"
)
_PROMPT_ECHO = re.compile(r"【分诊卡】|【参考指南】|【患者|\[triage card\]|\[guidelines\]|\[patient")
# Safety-net sentences may name symptoms the patient does not have ("if a rash appears...").
_CONDITIONAL = re.compile(
    r"如果|若|一旦|假如|万一|要是|如出现|\bif\b|\bshould\b|\bwatch for\b|\bin case\b|\bunless\b"
)
_SENTENCES = re.compile(r"[^。！？!?；;\n.]+[。！？!?；;\n.]?")
_TOO_ALARMED = re.compile(r"立即拨打\s*120|马上打\s*120|call 120 (now|immediately)|call an ambulance now")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str | None = None


def check_draft(
    draft: str, level: Level | None, *, final: bool = True, denied: frozenset[str] = frozenset()
) -> CheckResult:
    """`denied`: symptom concepts the patient said they do NOT have; a draft that asserts one of
    them (outside an "if ..." safety-net sentence) invents facts and is rejected."""
    text = draft.lower()
    if _PROMPT_ECHO.search(text):
        return CheckResult(False, "prompt_echo")
    if denied and _asserts_denied(text, denied):
        return CheckResult(False, "contradicts_facts")
    if _DIAGNOSIS.search(text):
        return CheckResult(False, "diagnosis")
    if _PRESCRIPTION.search(text):
        return CheckResult(False, "prescription")
    if level is not None and level.rank >= Level.urgent.rank and _TOO_RELAXED.search(text):
        return CheckResult(False, "contradicts_level")
    if level is not None and level.rank < Level.emergency.rank and _TOO_ALARMED.search(text):
        return CheckResult(False, "contradicts_level")
    if final and level is not None and level.rank >= Level.emergency.rank and "120" not in text:
        return CheckResult(False, "missing_120")
    return CheckResult(True)


def _asserts_denied(text: str, denied: frozenset[str]) -> bool:
    from tools.fact_extraction import normalize_text
    from tools.triage import _engine

    matcher = _engine().matcher
    for sentence in _SENTENCES.findall(text):
        if _CONDITIONAL.search(sentence):
            continue
        if set(matcher.match(normalize_text(sentence)).present()) & denied:
            return True
    return False
