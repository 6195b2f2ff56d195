"""Booking server: FHIR-shaped Schedule / Slot / Appointment over REST, on SQLite or PostgreSQL.

BookingRuntime(settings, notify) is started by the app lifespan; `router` serves /api/booking/...
and /fhir/...; BookingService holds the rules (waiting list, referral numbers, idempotency)."""
