"""Booking rules: search, book, cancel, reschedule, waiting list (候补), community referrals (号源下沉),
and (in the mixins) exam bookings with the follow-up offer when a report is ready (预就诊) and the
FHIR R4 views.

Every write runs in one database transaction through Database.run: a unique-index conflict (two
clients on the last slot) rolls back and runs again, and the rerun then answers slot_taken — or
replays the stored result when it was the same request retried with the same Idempotency-Key.
Notifications go out after the commit, so nobody is told about a booking that was rolled back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from server.booking import store
from server.booking.common import (
    HALF_DAYS,
    Clock,
    Notify,
    Outcome,
    check_key,
    new_id,
    retry,
    utc_now,
)
from server.booking.db import Database, Row, Tx, open_database
from server.booking.errors import BookingError
from server.booking.exam_bookings import ExamBookingsMixin
from server.booking.fhir_views import FhirViewsMixin
from tools.booking.models import Clinic, ClinicDepartment, Doctor, SlotSpec

log = logging.getLogger(__name__)

SlotGenerator = Callable[[Clinic, date, int], list[SlotSpec]]
PAST_DAYS_KEPT = 30  # slot ids of the last month still answer slot_in_past instead of slot_not_found


class Directory(Protocol):
    """What the service needs of tools.booking.catalogue.ClinicDirectory."""

    clinics: dict[str, Clinic]


def _default_generator(clinic: Clinic, start: date, days: int) -> list[SlotSpec]:
    from tools.booking.catalogue import generate_slots

    return generate_slots(clinic, start, days)


class BookingService(ExamBookingsMixin, FhirViewsMixin):
    def __init__(
        self,
        db: Database | str | Path,
        directory: Directory,
        *,
        notify: Notify | None = None,
        clock: Clock = utc_now,
        tz: str = "Asia/Shanghai",
        slot_generator: SlotGenerator | None = None,
    ) -> None:
        self.db = db if isinstance(db, Database) else open_database(db)
        self.db.apply_schema(store.SCHEMA)
        self.directory = directory
        self.notify = notify
        self.clock = clock
        self.tz = ZoneInfo(tz)
        self.generate_slots = slot_generator or _default_generator
        # (clinic, day) -> fingerprint known to be stored; reset when the directory object changes.
        self._synced: dict[tuple[str, str], str] = {}
        self._synced_directory: Directory = directory
        self._sync_lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    # -------------------------------------------------------------------------- catalogue

    def clinic(self, clinic_id: str) -> Clinic:
        clinic = self.directory.clinics.get(clinic_id)
        if clinic is None:
            raise BookingError(404, "unknown_clinic", clinic_id=clinic_id)
        return clinic

    def department(self, clinic: Clinic, department_id: str) -> ClinicDepartment:
        for dept in clinic.departments:
            if dept.id == department_id:
                return dept
        raise BookingError(404, "unknown_department", clinic_id=clinic.id, department_id=department_id)

    def _doctor(self, clinic_id: str, department_id: str, doctor_id: str) -> Doctor | None:
        clinic = self.directory.clinics.get(clinic_id)
        for dept in clinic.departments if clinic else []:
            if dept.id == department_id:
                return next((d for d in dept.doctors if d.id == doctor_id), None)
        return None

    def _zone(self, clinic: Clinic | None) -> ZoneInfo:
        return ZoneInfo(clinic.timezone) if clinic else self.tz

    def today(self, clinic: Clinic) -> date:
        return self.clock().astimezone(self._zone(clinic)).date()

    def open_days(self, clinic: Clinic) -> list[date]:
        """Today and the next booking_days_ahead days (the catalogue's check_bookable window)."""
        first = self.today(clinic)
        return [first + timedelta(days=i) for i in range(clinic.booking_days_ahead + 1)]

    # -------------------------------------------------------------------------- slot materialisation

    def ensure_days(self, clinic: Clinic, days: Sequence[date]) -> None:
        """Stores the slots of these days from the schedule. Checked once per (clinic, day) for a
        given directory object (catalogues are immutable; a new directory is a new schedule) and
        per schedule version in the database (another process may have synced it already)."""
        if self.directory is not self._synced_directory:
            self._synced.clear()
            self._synced_directory = self.directory
        for day in days:
            key = (clinic.id, day.isoformat())
            if key in self._synced:
                continue
            with self._sync_lock:  # one thread syncs; the others then find it done
                if key in self._synced:
                    continue
                specs = self.generate_slots(clinic, day, 1)
                print_ = store.fingerprint(specs)

                def work(
                    tx: Tx, day_text: str = key[1], specs: list[SlotSpec] = specs, print_: str = print_
                ) -> None:
                    store.lock_day(tx, clinic.id, day_text)
                    if store.stored_fingerprint(tx, clinic.id, day_text) != print_:
                        store.sync_day(tx, clinic.id, day_text, specs, print_)

                self.db.run(work)
                self._synced[key] = print_

    def warm_up(self) -> None:
        """Materialises every clinic's open days (on start; otherwise it happens lazily)."""
        for clinic in self.directory.clinics.values():
            self.ensure_days(clinic, self.open_days(clinic))

    # -------------------------------------------------------------------------- views

    def slot_view(self, row: Row) -> dict[str, Any]:
        clinic = self.directory.clinics.get(row["clinic_id"])
        zone = self._zone(clinic)
        dept = next((d for d in clinic.departments if d.id == row["department_id"]), None) if clinic else None
        doctor = self._doctor(row["clinic_id"], row["department_id"], row["doctor_id"])
        now = store.utc_text(self.clock())
        reserved = bool(row.get("referral_only")) and (row.get("release_utc") or "") > now
        view: dict[str, Any] = {
            "slot_id": row["slot_id"],
            "clinic_id": row["clinic_id"],
            "clinic_name": clinic.name.model_dump() if clinic else None,
            "department_id": row["department_id"],
            "department_name": dept.name.model_dump() if dept else None,
            "room_id": dept.room_id if dept else None,
            "doctor_id": row["doctor_id"],
            "doctor_name": doctor.name.model_dump() if doctor else None,
            "doctor_title": doctor.title.model_dump() if doctor else None,
            "date": row["day"],
            "half_day": row["half_day"],
            "number": row["number"],
            "start": store.parse_utc(row["start_utc"]).astimezone(zone).isoformat(),
            "end": store.parse_utc(row["end_utc"]).astimezone(zone).isoformat(),
        }
        if "referral_only" in row:
            view["referral_only"] = reserved
            if reserved and row.get("release_utc"):
                view["opens_to_all_at"] = store.parse_utc(row["release_utc"]).astimezone(zone).isoformat()
        return view

    def appointment_view(self, row: Row) -> dict[str, Any]:
        view = self.slot_view(row)
        view.update(
            appointment_id=row["appointment_id"],
            patient_id=row["patient_id"],
            status=row["status"],
            source=row["source"],
            referral_from=row["referral_from"],
            rescheduled_from=row["rescheduled_from"],
            rescheduled_to=row["rescheduled_to"],
            created_at=row["created_at"],
            cancelled_at=row["cancelled_at"],
        )
        return {"appointment_id": view.pop("appointment_id"), **view}

    def _waitlist_view(self, tx: Tx, entry: Row) -> dict[str, Any]:
        clinic = self.directory.clinics.get(entry["clinic_id"])
        dept = (
            next((d for d in clinic.departments if d.id == entry["department_id"]), None) if clinic else None
        )
        status = entry["status"]
        if status == "waiting" and clinic is not None and entry["day"] < self.today(clinic).isoformat():
            status = "expired"  # the day passed without a cancellation
        return {
            "entry_id": entry["entry_id"],
            "status": status,
            "position": store.waitlist_position(tx, entry) if status == "waiting" else None,
            "clinic_id": entry["clinic_id"],
            "department_id": entry["department_id"],
            "department_name": dept.name.model_dump() if dept else None,
            "date": entry["day"],
            "half_day": entry["half_day"],
            "referral_from": entry["referral_from"],
            "appointment_id": entry["appointment_id"],
            "created_at": entry["created_at"],
        }

    # -------------------------------------------------------------------------- search

    def search_slots(
        self,
        clinic_id: str,
        department_id: str,
        *,
        day: date | None = None,
        half_day: str | None = None,
        doctor_id: str | None = None,
        patient_is_referral: bool = False,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Free slots open to this patient (slot views), earliest first."""
        return list(
            self.search(
                clinic_id,
                department_id,
                day=day,
                half_day=half_day,
                doctor_id=doctor_id,
                patient_is_referral=patient_is_referral,
                limit=limit,
            )["slots"]
        )

    def search(
        self,
        clinic_id: str,
        department_id: str,
        *,
        day: date | None = None,
        half_day: str | None = None,
        doctor_id: str | None = None,
        patient_is_referral: bool = False,
        limit: int = 20,
    ) -> dict[str, Any]:
        """{clinic_id, department_id, slots: free slots open to this patient, earliest first,
        sessions: [{date, half_day, total, free, waiting}] (a full session is where the waiting
        list helps)}."""
        clinic = self.clinic(clinic_id)
        dept = self.department(clinic, department_id)
        if half_day is not None and half_day not in HALF_DAYS:
            raise BookingError(422, "bad_half_day")
        if doctor_id is not None and all(d.id != doctor_id for d in dept.doctors):
            raise BookingError(404, "unknown_doctor", clinic_id=clinic_id, doctor_id=doctor_id)
        days = self.open_days(clinic)
        if day is not None:
            self._check_open_day(clinic, day)
            days = [day]
        self.ensure_days(clinic, days)
        day_texts = [d.isoformat() for d in days]
        now = store.utc_text(self.clock())
        limit = max(1, min(limit, 200))

        def work(tx: Tx) -> dict[str, Any]:
            rows = store.free_slots(
                tx,
                clinic_id,
                department_id,
                day_texts,
                now,
                referral=patient_is_referral,
                half_day=half_day,
                doctor_id=doctor_id,
                limit=limit,
            )
            sessions = [
                {
                    "date": r["day"],
                    "half_day": r["half_day"],
                    "total": int(r["total"]),
                    "free": int(r["free_public"] or 0),
                    "waiting": int(r["waiting"]),
                }
                for r in store.session_counts(tx, clinic_id, department_id, day_texts, now)
                if half_day is None or r["half_day"] == half_day
            ]
            return {"slots": [self.slot_view(r) for r in rows], "sessions": sessions}

        result = self.db.run(work, write=False)
        return {"clinic_id": clinic_id, "department_id": department_id, **result}

    def _check_open_day(self, clinic: Clinic, day: date) -> None:
        today = self.today(clinic)
        if day < today:
            raise BookingError(422, "date_in_past", date=day.isoformat())
        if day > today + timedelta(days=clinic.booking_days_ahead):
            raise BookingError(422, "not_open_yet", date=day.isoformat(), days=clinic.booking_days_ahead)

    # -------------------------------------------------------------------------- booking checks

    def _locate_slot(self, slot_id: str) -> Clinic:
        """Materialises the day a slot id names, so the lookup sees the current schedule."""
        parts = slot_id.split(":") if isinstance(slot_id, str) else []
        clinic = self.directory.clinics.get(parts[0]) if len(parts) == 5 else None
        try:
            day = date.fromisoformat(parts[2]) if clinic else None
        except ValueError:
            day = None
        if clinic is None or day is None:
            raise BookingError(404, "slot_not_found")
        today = self.today(clinic)
        if day > today + timedelta(days=clinic.booking_days_ahead):
            raise BookingError(422, "not_open_yet", date=day.isoformat(), days=clinic.booking_days_ahead)
        if day >= today - timedelta(days=PAST_DAYS_KEPT):
            self.ensure_days(clinic, [day])
        return clinic

    def _check_referral(self, referral_from: str | None) -> None:
        if referral_from is None:
            return
        source = self.directory.clinics.get(referral_from)
        if source is None or source.kind != "community":
            raise BookingError(422, "bad_referral", referral_from=referral_from)

    def _bookable_slot(
        self, tx: Tx, patient_id: str, slot_id: str, now: str, referral_from: str | None, *, ignore: str = ""
    ) -> Row:
        """The slot row if this patient may book it now; else the precise reason."""
        slot = store.get_slot(tx, slot_id)
        if slot is None or not slot["active"]:
            raise BookingError(404, "slot_not_found")
        zone = self._zone(self.directory.clinics.get(slot["clinic_id"]))
        if slot["start_utc"] <= now:
            start = store.parse_utc(slot["start_utc"]).astimezone(zone).strftime("%Y-%m-%d %H:%M")
            raise BookingError(409, "slot_in_past", start=start)
        if slot["referral_only"] and slot["release_utc"] > now and referral_from is None:
            release = store.parse_utc(slot["release_utc"]).astimezone(zone).strftime("%Y-%m-%d %H:%M")
            raise BookingError(403, "referral_only", release=release)
        mine = store.active_in_session(
            tx, patient_id, slot["clinic_id"], slot["department_id"], slot["day"], slot["half_day"]
        )
        if mine is not None and mine["appointment_id"] != ignore:
            raise BookingError(
                409,
                "already_booked",
                date=slot["day"],
                half_day=slot["half_day"],
                extra={"appointment_id": mine["appointment_id"]},
            )
        if store.slot_is_taken(tx, slot_id):
            waitlist = {k: slot[k] for k in ("clinic_id", "department_id", "half_day")} | {
                "date": slot["day"]
            }
            raise BookingError(409, "slot_taken", extra={"waitlist": waitlist})
        return slot

    def _replay(self, tx: Tx, patient_id: str, key: str, operation: str, hash_: str) -> str | None:
        """The result id of an earlier request with this key, or None for a new key — which is then
        claimed at once: a concurrent request with the same key blocks on the claim until this
        transaction ends, then conflicts, reruns, and replays this result."""
        seen = store.idempotent_result(tx, patient_id, key)
        if seen is None:
            store.claim_key(tx, patient_id, key, operation, hash_, store.utc_text(self.clock()))
            return None
        if seen["operation"] != operation or seen["request_hash"] != hash_:
            raise BookingError(409, "idempotency_conflict")
        return str(seen["result_id"])

    def _own_appointment(self, tx: Tx, patient_id: str, appointment_id: str, now: str) -> Row:
        row = store.get_appointment(tx, appointment_id)
        if row is None:
            raise BookingError(404, "appointment_not_found")
        if row["patient_id"] != patient_id:
            raise BookingError(403, "not_your_appointment")
        if row["status"] == "cancelled":
            raise BookingError(409, "already_cancelled")
        if row["status"] != "booked" or row["start_utc"] <= now:
            raise BookingError(409, "appointment_in_past")
        return row

    def _promote(self, tx: Tx, slot_id: str, now: str) -> tuple[str, str] | None:
        """Books a freed slot for the first eligible waiting patient: (patient_id, appointment_id)."""
        slot = store.get_slot(tx, slot_id)
        if slot is None or not slot["active"] or slot["start_utc"] <= now:
            return None
        reserved = bool(slot["referral_only"]) and slot["release_utc"] > now
        for entry in store.waiting_entries(
            tx, slot["clinic_id"], slot["department_id"], slot["day"], slot["half_day"]
        ):
            if reserved and not entry["referral_from"]:
                continue  # a reserved number goes to a referred patient, or waits for its release
            appointment_id = new_id("apt")
            claimed = tx.execute(
                "UPDATE waitlist SET status = 'promoted', appointment_id = ?, closed_at = ? "
                "WHERE entry_id = ? AND status = 'waiting'",
                (appointment_id, now, entry["entry_id"]),
            )
            if not claimed:  # another transaction promoted this entry first
                continue
            store.insert_appointment(
                tx,
                appointment_id,
                entry["patient_id"],
                slot,
                source="waitlist",
                now=now,
                referral_from=entry["referral_from"],
            )
            return entry["patient_id"], appointment_id
        return None

    def _run(self, work: Callable[[Tx], Outcome], *, write: bool = True) -> dict[str, Any]:
        from server.booking.db import RetryableError, UniqueViolation

        try:
            outcome = self.db.run(work, write=write)
        except (UniqueViolation, RetryableError) as exc:
            log.warning("booking transaction kept conflicting: %s", exc)
            raise BookingError(503, "busy") from exc
        for patient_id, kind, payload in outcome.notices:
            if self.notify is None:
                continue
            try:
                self.notify(patient_id, kind, payload)
            except Exception:  # the booking stands even if the push fails; the outbox retries
                log.exception("notify %s to %s failed", kind, patient_id)
        return outcome.data

    def _promotion_notice(
        self, tx: Tx, promoted: tuple[str, str] | None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        if promoted is None:
            return []
        patient_id, appointment_id = promoted
        row = store.get_appointment(tx, appointment_id)
        assert row is not None
        return [(patient_id, "waitlist_promoted", {"appointment": self.appointment_view(row)})]

    # -------------------------------------------------------------------------- commands

    def book(
        self, patient_id: str, slot_id: str, idempotency_key: str | None, *, referral_from: str | None = None
    ) -> dict[str, Any]:
        """Books one slot -> the appointment view plus "replayed": a retry with the same key and
        body returns the first booking (replayed=true); with another body, idempotency_conflict."""
        key = check_key(idempotency_key)
        self._check_referral(referral_from)
        hash_ = store.request_hash("book", {"slot_id": slot_id, "referral_from": referral_from})
        if not isinstance(slot_id, str):
            raise BookingError(404, "slot_not_found")

        def work(tx: Tx) -> Outcome:
            now = store.utc_text(self.clock())
            earlier = self._replay(tx, patient_id, key, "book", hash_)
            if earlier is not None:
                return Outcome(self._appointment_data(tx, earlier, replayed=True))
            slot = self._bookable_slot(tx, patient_id, slot_id, now, referral_from)
            appointment_id = new_id("apt")
            store.insert_appointment(
                tx, appointment_id, patient_id, slot, source="patient", now=now, referral_from=referral_from
            )
            store.remember(tx, patient_id, key, "book", hash_, appointment_id, now)
            return Outcome(self._appointment_data(tx, appointment_id, replayed=False))

        try:
            self._locate_slot(slot_id)
        except BookingError:
            # A replay must still answer after the slot's day has left the window.
            seen = self.db.run(lambda tx: store.idempotent_result(tx, patient_id, key), write=False)
            if seen is None or seen["request_hash"] != hash_:
                raise
        data = self._run(work)
        return {**data["appointment"], "replayed": data["replayed"]}

    def _appointment_data(self, tx: Tx, appointment_id: str, *, replayed: bool) -> dict[str, Any]:
        row = store.get_appointment(tx, appointment_id)
        assert row is not None
        return {"appointment": self.appointment_view(row), "replayed": replayed}

    def cancel(
        self, patient_id: str, appointment_id: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Cancels; the first waiting patient of that session gets the freed slot in the same
        transaction and a "waitlist_promoted" notification -> {"appointment", "waitlist_promoted",
        "replayed"}. The key is optional here: with it, a retried cancel answers like the first one
        instead of already_cancelled."""
        key = check_key(idempotency_key) if idempotency_key is not None else None
        hash_ = store.request_hash("cancel", {"appointment_id": appointment_id})

        def work(tx: Tx) -> Outcome:
            now = store.utc_text(self.clock())
            if key is not None:
                earlier = self._replay(tx, patient_id, key, "cancel", hash_)
                if earlier is not None:
                    data = self._appointment_data(tx, earlier, replayed=True)
                    return Outcome(data | {"waitlist_promoted": None})
            row = self._own_appointment(tx, patient_id, appointment_id, now)
            if not store.mark_cancelled(tx, appointment_id, now):
                raise retry()
            promoted = self._promote(tx, row["slot_id"], now)
            if key is not None:
                store.remember(tx, patient_id, key, "cancel", hash_, appointment_id, now)
            data = self._appointment_data(tx, appointment_id, replayed=False)
            data["waitlist_promoted"] = promoted is not None
            return Outcome(data, self._promotion_notice(tx, promoted))

        return self._run(work)

    def reschedule(
        self, patient_id: str, appointment_id: str, new_slot_id: str, idempotency_key: str | None
    ) -> dict[str, Any]:
        """Moves a booking to another slot atomically (the old one is freed only if the new one is
        booked) -> {"appointment": new view, "previous": old view, "replayed", "waitlist_promoted"}."""
        key = check_key(idempotency_key)
        hash_ = store.request_hash("reschedule", {"appointment_id": appointment_id, "slot_id": new_slot_id})
        self._locate_slot(new_slot_id)

        def work(tx: Tx) -> Outcome:
            now = store.utc_text(self.clock())
            earlier = self._replay(tx, patient_id, key, "reschedule", hash_)
            if earlier is not None:
                data = self._appointment_data(tx, earlier, replayed=True)
                previous = store.get_appointment(tx, appointment_id)
                data["previous"] = self.appointment_view(previous) if previous else None
                return Outcome(data)
            old = self._own_appointment(tx, patient_id, appointment_id, now)
            if old["slot_id"] == new_slot_id:
                raise BookingError(
                    409,
                    "already_booked",
                    date=old["day"],
                    half_day=old["half_day"],
                    extra={"appointment_id": appointment_id},
                )
            slot = self._bookable_slot(
                tx, patient_id, new_slot_id, now, old["referral_from"], ignore=appointment_id
            )
            new_appointment = new_id("apt")
            if not store.mark_cancelled(tx, appointment_id, now, rescheduled_to=new_appointment):
                raise retry()
            store.insert_appointment(
                tx,
                new_appointment,
                patient_id,
                slot,
                source="reschedule",
                now=now,
                referral_from=old["referral_from"],
                rescheduled_from=appointment_id,
            )
            promoted = self._promote(tx, old["slot_id"], now)
            store.remember(tx, patient_id, key, "reschedule", hash_, new_appointment, now)
            data = self._appointment_data(tx, new_appointment, replayed=False)
            data["previous"] = self.appointment_view(
                old | {"status": "cancelled", "rescheduled_to": new_appointment, "cancelled_at": now}
            )
            data["waitlist_promoted"] = promoted is not None
            return Outcome(data, self._promotion_notice(tx, promoted))

        return self._run(work)

    def join_waitlist(
        self,
        patient_id: str,
        clinic_id: str,
        department_id: str,
        day: date,
        half_day: str,
        idempotency_key: str | None,
        *,
        referral_from: str | None = None,
    ) -> dict[str, Any]:
        """Waits for a full session (候补) -> the entry view {entry_id, status, position, ...} plus
        "replayed". A session with a free slot open to the patient answers slots_available."""
        key = check_key(idempotency_key)
        clinic = self.clinic(clinic_id)
        self.department(clinic, department_id)
        if half_day not in HALF_DAYS:
            raise BookingError(422, "bad_half_day")
        self._check_referral(referral_from)
        self._check_open_day(clinic, day)
        self.ensure_days(clinic, [day])
        day_text = day.isoformat()
        hash_ = store.request_hash(
            "waitlist",
            {
                "clinic_id": clinic_id,
                "department_id": department_id,
                "date": day_text,
                "half_day": half_day,
                "referral_from": referral_from,
            },
        )

        def work(tx: Tx) -> Outcome:
            now = store.utc_text(self.clock())
            earlier = self._replay(tx, patient_id, key, "waitlist", hash_)
            if earlier is not None:
                return Outcome({"entry": self._entry_view(tx, earlier), "replayed": True})
            store.lock_waitlist_session(tx, clinic_id, department_id, day_text, half_day)
            waiting = store.waiting_entry_of(tx, patient_id, clinic_id, department_id, day_text, half_day)
            if waiting is not None:
                position = store.waitlist_position(tx, waiting)
                raise BookingError(
                    409,
                    "already_on_waitlist",
                    position=position,
                    extra={"entry_id": waiting["entry_id"], "position": position},
                )
            mine = store.active_in_session(tx, patient_id, clinic_id, department_id, day_text, half_day)
            if mine is not None:
                raise BookingError(
                    409,
                    "already_booked",
                    date=day_text,
                    half_day=half_day,
                    extra={"appointment_id": mine["appointment_id"]},
                )
            free = store.free_slots(
                tx,
                clinic_id,
                department_id,
                [day_text],
                now,
                referral=referral_from is not None,
                half_day=half_day,
                limit=1,
            )
            if free:
                raise BookingError(409, "slots_available", extra={"slot": self.slot_view(free[0])})
            entry_id = new_id("wait")
            tx.execute(
                "INSERT INTO waitlist (entry_id, patient_id, clinic_id, department_id, day, half_day, "
                "referral_from, "
                "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
                (entry_id, patient_id, clinic_id, department_id, day_text, half_day, referral_from, now),
            )
            store.remember(tx, patient_id, key, "waitlist", hash_, entry_id, now)
            return Outcome({"entry": self._entry_view(tx, entry_id), "replayed": False})

        data = self._run(work)
        return {**data["entry"], "replayed": data["replayed"]}

    def _entry_view(self, tx: Tx, entry_id: str) -> dict[str, Any]:
        entry = tx.one("SELECT * FROM waitlist WHERE entry_id = ?", (entry_id,))
        assert entry is not None
        return self._waitlist_view(tx, entry)

    def leave_waitlist(self, patient_id: str, entry_id: str) -> dict[str, Any]:
        def work(tx: Tx) -> Outcome:
            entry = tx.one("SELECT * FROM waitlist WHERE entry_id = ?", (entry_id,))
            if entry is None:
                raise BookingError(404, "waitlist_not_found")
            if entry["patient_id"] != patient_id:
                raise BookingError(403, "not_your_appointment")
            if entry["status"] == "waiting":
                tx.execute(
                    "UPDATE waitlist SET status = 'left', closed_at = ? "
                    "WHERE entry_id = ? AND status = 'waiting'",
                    (store.utc_text(self.clock()), entry_id),
                )
            return Outcome({"entry": self._entry_view(tx, entry_id)})

        return self._run(work)

    # -------------------------------------------------------------------------- queries

    def list_appointments(self, patient_id: str) -> dict[str, Any]:
        def work(tx: Tx) -> Outcome:
            appointments = [self.appointment_view(r) for r in store.patient_appointments(tx, patient_id)]
            waitlist = [self._waitlist_view(tx, e) for e in store.patient_waitlist(tx, patient_id)]
            return Outcome({"appointments": appointments, "waitlist": waitlist})

        return self._run(work, write=False)

    def get_appointment(self, patient_id: str, appointment_id: str) -> dict[str, Any]:
        def work(tx: Tx) -> Outcome:
            row = store.get_appointment(tx, appointment_id)
            if row is None:
                raise BookingError(404, "appointment_not_found")
            if row["patient_id"] != patient_id:
                raise BookingError(403, "not_your_appointment")
            return Outcome({"appointment": self.appointment_view(row)})

        return self._run(work, write=False)

    def waitlist_snapshot(self, clinic_id: str, department_id: str, day: date, half_day: str) -> list[str]:
        """Patient ids waiting for a session, in order (for clinicians and tests)."""
        rows = self.db.run(
            lambda tx: store.waiting_entries(tx, clinic_id, department_id, day.isoformat(), half_day),
            write=False,
        )
        return [r["patient_id"] for r in rows]


__all__ = ["BookingService", "Clock", "Directory", "Notify", "check_key", "new_id", "utc_now"]
