"""FHIR R4 views (BookingService mixin): Schedule, Slot and Appointment resources shaped by
tools.booking.fhir from the stored slots and appointments."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from server.booking import store
from server.booking.common import HALF_DAYS
from server.booking.db import Row, Tx
from server.booking.errors import BookingError
from tools.booking.models import SlotSpec

if TYPE_CHECKING:
    from server.booking.service import BookingService


class FhirViewsMixin:
    def _spec(self: BookingService, row: Row) -> SlotSpec:
        zone = self._zone(self.directory.clinics.get(row["clinic_id"]))
        release = row.get("release_utc")
        return SlotSpec(
            slot_id=row["slot_id"],
            clinic_id=row["clinic_id"],
            department_id=row["department_id"],
            doctor_id=row["doctor_id"],
            date=date.fromisoformat(row["day"]),
            half_day=row["half_day"],
            number=row["number"],
            start=store.parse_utc(row["start_utc"]).astimezone(zone),
            end=store.parse_utc(row["end_utc"]).astimezone(zone),
            referral_only=bool(row.get("referral_only", 0)),
            referral_release_at=store.parse_utc(release).astimezone(zone) if release else None,
        )

    def fhir_schedules(
        self, clinic_id: str, department_id: str | None = None, lang: str = "zh"
    ) -> dict[str, Any]:
        from tools.booking.fhir import schedule_resource

        clinic = self.clinic(clinic_id)
        depts = [self.department(clinic, department_id)] if department_id else clinic.departments
        entries = [
            {"resource": schedule_resource(clinic, doctor, department=dept, now=self.clock(), lang=lang)}
            for dept in depts
            for doctor in dept.doctors
        ]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    def fhir_slots(
        self,
        clinic_id: str,
        department_id: str,
        *,
        day: date | None = None,
        half_day: str | None = None,
        lang: str = "zh",
        limit: int = 500,
    ) -> dict[str, Any]:
        """Every slot of the department in the window (free, busy, or busy-unavailable while
        reserved for referrals) as a FHIR searchset Bundle."""
        from tools.booking.fhir import slot_resource

        clinic = self.clinic(clinic_id)
        dept = self.department(clinic, department_id)
        if half_day is not None and half_day not in HALF_DAYS:
            raise BookingError(422, "bad_half_day")
        days = self.open_days(clinic)
        if day is not None:
            self._check_open_day(clinic, day)
            days = [day]
        self.ensure_days(clinic, days)
        marks = ", ".join("?" for _ in days)
        sql = (
            f"SELECT s.*, (SELECT COUNT(*) FROM appointments a "
            f"WHERE a.slot_id = s.slot_id AND a.status = 'booked') "
            f"AS taken FROM slots s WHERE s.clinic_id = ? AND s.department_id = ? AND s.active = 1 "
            f"AND s.day IN ({marks})"
            + (" AND s.half_day = ?" if half_day else "")
            + " ORDER BY s.start_utc, s.doctor_id, s.number LIMIT ?"
        )
        params = (
            [clinic_id, department_id, *[d.isoformat() for d in days]]
            + ([half_day] if half_day else [])
            + [limit]
        )
        rows = self.db.run(lambda tx: tx.all(sql, params), write=False)
        now = self.clock()
        entries = [
            {
                "resource": slot_resource(
                    self._spec(r),
                    "busy" if r["taken"] or store.parse_utc(r["start_utc"]) <= now else "free",
                    service_type=dept.name.get(lang),
                    now=now,
                    lang=lang,
                )
            }
            for r in rows
        ]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    def fhir_appointments(
        self, patient_id: str, appointment_id: str | None = None, lang: str = "zh"
    ) -> dict[str, Any]:
        """The patient's appointments as FHIR Appointments (one resource, or a searchset Bundle)."""
        from tools.booking.fhir import appointment_resource

        def resource(row: Row) -> dict[str, Any]:
            view = self.appointment_view(row)
            return appointment_resource(
                row["appointment_id"],
                self._spec(row),
                patient_id,
                row["status"],
                service_type=(view["department_name"] or {}).get(lang, row["department_id"]),
                created=store.parse_utc(row["created_at"]),
                practitioner_display=(view["doctor_name"] or {}).get(lang),
                cancellation_reason="rescheduled" if row["rescheduled_to"] else None,
            )

        if appointment_id is not None:
            return resource(self._owned_row(patient_id, appointment_id))
        rows = self.db.run(lambda tx: store.patient_appointments(tx, patient_id), write=False)
        entries = [{"resource": resource(r)} for r in rows]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    def _owned_row(self: BookingService, patient_id: str, appointment_id: str) -> Row:
        def work(tx: Tx) -> Row:
            row = store.get_appointment(tx, appointment_id)
            if row is None:
                raise BookingError(404, "appointment_not_found")
            if row["patient_id"] != patient_id:
                raise BookingError(403, "not_your_appointment")
            return row

        return self.db.run(work, write=False)
