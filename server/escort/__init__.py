"""The full-visit escort on the server: a patient's outpatient visit as a persisted state machine
(挂号 → 报到 → 候诊 → 就诊 → 缴费 → 检查 → 取药 → 取报告 → 复诊), with guidance at every step and each
step change pushed to the patient (notify kind "visit_step").

    store.py    SQLite (escort.sqlite3 in settings.data_dir): visits, event log, queue counters
    service.py  ownership, department check, queue numbers, notify; EscortRuntime for the lifespan
    routes.py   REST /api/visits/...
The state machine and texts: tools/visit_escort.py and tools/data/visit_steps.yaml.
"""

from server.escort.service import EscortApiError, EscortRuntime, EscortService

__all__ = ["EscortApiError", "EscortRuntime", "EscortService"]
