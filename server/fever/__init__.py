"""Child fever home monitoring on the server: family accounts, the temperature diary (manual and
Bluetooth readings, antipyretic doses, symptoms), traffic-light grading after every entry, re-measure
reminders and red alerts over /ws/fever, the pre-consultation form (with FHIR R4 export) and the
nurse callback queue for clinicians.

    store.py      SQLite (fever.sqlite3 in settings.data_dir)
    auth.py       scrypt password hashes, bearer tokens stored hashed
    models.py     request bodies
    service.py    the rules of the diary: ownership, validation, grading, events to push
    forms.py      the pre-consultation form and its FHIR R4 Bundle
    reminders.py  when to remind, and the asyncio loop that pushes due reminders
    routes.py     REST /api/fever/...        ws.py   websocket /ws/fever and the push hub
    runtime.py    what the app lifespan starts and stops
"""
