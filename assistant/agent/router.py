"""Deterministic router: which tool handles a message. Rules decide; embeddings break ties.

Small local models are unreliable at choosing tools, so the choice is made here, in code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np

from assistant.agent.prompts import prompt_file
from tools.fact_extraction import normalize_text
from tools.triage import _engine

_PRESCRIPTION = re.compile(
    r"开(点|些|个)?.{0,4}(药|处方)|处方|剂量|吃(点)?什么药|用什么药|prescri|"
    r"what (medicine|drug|pill)s? (should|can|do)|"
    r"\bdose\b|dosage|antibiotics? for me"
)
_QUESTION = re.compile(
    r"[?？]|什么|怎么|如何|多少|哪(里|个|些)|是否|要不要|能不能|可以吗|吗$|^(what|when|how|which|should|can|is|do|where)\b"
)
_GREETING = re.compile(r"^(你好|您好|hi|hello|hey|谢谢|多谢|thanks?( you)?|ok|好的)[!！。.\s]*$")
# Modifiers and context words are not symptoms on their own.
_NOT_SYMPTOMS = {
    "mild",
    "severe",
    "sudden_onset",
    "exertional",
    "chronic_course",
    "child_words",
    "newborn_words",
    "elderly_words",
    "well_appearing",
    "no_symptoms_now",
    "pregnancy_words",
    "bears_weight",
}


class Route(StrEnum):
    symptoms = "symptoms"  # triage tool (+ guideline search for grounding)
    guideline_question = "guideline_question"  # guideline search tool only
    prescription_request = "prescription_request"  # refuse; triage anything mentioned
    greeting = "greeting"


Embed = Callable[[Sequence[str]], np.ndarray]


class Router:
    def __init__(self, embed: Embed | None = None) -> None:
        self._embed = embed
        self._exemplars: tuple[list[Route], np.ndarray] | None = None

    def route(self, text: str, *, pending_question: bool = False) -> Route:
        norm = normalize_text(text)
        if _PRESCRIPTION.search(norm):
            return Route.prescription_request
        if pending_question:
            return Route.symptoms  # an answer to our question
        if _symptom_concepts(norm):
            return Route.symptoms
        if _GREETING.match(norm.strip()):
            return Route.greeting
        if _QUESTION.search(norm):
            return Route.guideline_question
        return self._nearest(norm) if self._embed else Route.symptoms

    def _nearest(self, text: str) -> Route:
        """Embedding cross-check for messages the rules cannot place."""
        if self._exemplars is None:
            intents = prompt_file("intents.yaml")["intents"]
            labels = [Route(name) for name, examples in intents.items() for _ in examples]
            vectors = self._embed([e for examples in intents.values() for e in examples])
            self._exemplars = (labels, _unit(np.asarray(vectors, dtype=np.float32)))
        labels, matrix = self._exemplars
        query = _unit(np.asarray(self._embed([text]), dtype=np.float32))[0]
        return labels[int(np.argmax(matrix @ query))]


def _symptom_concepts(norm: str) -> set[str]:
    return set(_engine().matcher.match(norm).present()) - _NOT_SYMPTOMS


# Asking for a kind of care is not a symptom for the service desk ("帮我挂个中医的号").
_CARE_REQUESTS = {"tcm_request"}


def names_symptoms(text: str) -> bool:
    """The message names at least one symptom (not just a modifier like "severe" or a wish for a
    kind of care)."""
    return bool(_symptom_concepts(normalize_text(text)) - _CARE_REQUESTS)


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
