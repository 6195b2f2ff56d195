"""Clinician handoff (SBAR summaries and their FHIR export) and patient follow-up answers with
clinic flags. HandoffRuntime (runtime.py) holds the store; routes.py the REST API."""

from server.handoff.routes import router
from server.handoff.runtime import HandoffRuntime

__all__ = ["HandoffRuntime", "router"]
