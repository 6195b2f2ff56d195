"""Exam bookings (BookingService mixin): plan the ordered exams into as few trips as possible
(tools.booking.exams), take a place in each exam session (a conditional update, safe under
concurrency), and when a report is ready notify the patient with a follow-up slot offered with the
ordering doctor (预就诊)."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

from server.booking import store
from server.booking.common import Outcome, check_key, new_id
from server.booking.db import Row, Tx
from server.booking.errors import BookingError

if TYPE_CHECKING:
    from server.booking.service import BookingService


class ExamBookingsMixin:
    def book_exams(
        self: BookingService,
        patient_id: str,
        clinic_id: str,
        exam_ids: list[str],
        idempotency_key: str | None,
        *,
        lang: str = "zh",
        ordering_department_id: str | None = None,
        ordering_doctor_id: str | None = None,
    ) -> dict[str, Any]:
        """Plans the exams into as few trips as possible (tools.booking.exams) and books a place in
        each exam's session -> {"plan", "bookings", "replayed"}. The ordering doctor/department is
        kept so that report_ready can offer a follow-up visit with them."""
        from tools.booking.exams import plan_exams

        key = check_key(idempotency_key)
        clinic = self.clinic(clinic_id)
        if not exam_ids:
            raise BookingError(422, "no_exams")
        for exam_id in exam_ids:
            if all(e.id != exam_id for e in clinic.exams):
                raise BookingError(404, "unknown_exam", clinic_id=clinic_id, exam_id=exam_id)
        if ordering_department_id is not None:
            dept = self.department(clinic, ordering_department_id)
            if ordering_doctor_id is not None and all(d.id != ordering_doctor_id for d in dept.doctors):
                raise BookingError(404, "unknown_doctor", clinic_id=clinic_id, doctor_id=ordering_doctor_id)
        elif ordering_doctor_id is not None:
            raise BookingError(
                422, "invalid_field", field="ordering_department_id", detail="needed with ordering_doctor_id"
            )
        hash_ = store.request_hash(
            "exams",
            {
                "clinic_id": clinic_id,
                "exam_ids": list(exam_ids),
                "dept": ordering_department_id,
                "doctor": ordering_doctor_id,
            },
        )
        capacities = {e.id: e.capacity_per_half_day for e in clinic.exams}

        def work(tx: Tx) -> Outcome:
            now_dt = self.clock()
            now = store.utc_text(now_dt)
            earlier = self._replay(tx, patient_id, key, "exams", hash_)
            if earlier is not None:
                return Outcome(self._exam_group(tx, earlier, replayed=True))

            def left(exam_id: str, day: date, half_day: str) -> int:
                return capacities[exam_id] - store.exam_booked(
                    tx, clinic_id, exam_id, day.isoformat(), half_day
                )

            texts = self.directory if hasattr(self.directory, "preparation_text") else None
            plan = plan_exams(clinic, list(exam_ids), now_dt, lang, capacity=left, directory=texts)  # type: ignore[arg-type]
            group_id = new_id("exams")
            for trip in plan.trips:
                for exam in trip.exams:
                    day_text = trip.date.isoformat()
                    if not store.take_exam_place(
                        tx, clinic_id, exam.exam_id, day_text, trip.half_day, capacities[exam.exam_id]
                    ):
                        raise BookingError(
                            409, "exam_full", exam_id=exam.exam_id, date=day_text, half_day=trip.half_day
                        )
                    tx.execute(
                        "INSERT INTO exam_bookings (exam_booking_id, patient_id, clinic_id, exam_id, day, "
                        "half_day, "
                        "start_utc, end_utc, arrive_by_utc, report_ready_utc, ordering_department_id, "
                        "ordering_doctor_id, status, group_id, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?)",
                        (
                            new_id("exam"),
                            patient_id,
                            clinic_id,
                            exam.exam_id,
                            day_text,
                            trip.half_day,
                            store.utc_text(exam.start),
                            store.utc_text(exam.end),
                            store.utc_text(trip.arrive_by),
                            store.utc_text(exam.report_ready_at),
                            ordering_department_id,
                            ordering_doctor_id,
                            group_id,
                            now,
                        ),
                    )
            tx.execute(
                "INSERT INTO exam_groups VALUES (?, ?, ?, ?)",
                (group_id, patient_id, plan.model_dump_json(), now),
            )
            store.remember(tx, patient_id, key, "exams", hash_, group_id, now)
            return Outcome(self._exam_group(tx, group_id, replayed=False))

        return self._run(work)

    def _exam_group(self: BookingService, tx: Tx, group_id: str, *, replayed: bool) -> dict[str, Any]:
        group = tx.one("SELECT plan_json FROM exam_groups WHERE group_id = ?", (group_id,))
        rows = tx.all("SELECT * FROM exam_bookings WHERE group_id = ? ORDER BY start_utc", (group_id,))
        return {
            "group_id": group_id,
            "plan": json.loads(group["plan_json"]) if group else None,
            "bookings": [self._exam_view(r) for r in rows],
            "replayed": replayed,
        }

    def _exam_view(self: BookingService, row: Row) -> dict[str, Any]:
        clinic = self.directory.clinics.get(row["clinic_id"])
        zone = self._zone(clinic)
        exam = next((e for e in clinic.exams if e.id == row["exam_id"]), None) if clinic else None

        def local(column: str) -> str:
            return store.parse_utc(row[column]).astimezone(zone).isoformat()

        return {
            "exam_booking_id": row["exam_booking_id"],
            "exam_id": row["exam_id"],
            "exam_name": exam.name.model_dump() if exam else None,
            "room_id": exam.room_id if exam else None,
            "clinic_id": row["clinic_id"],
            "date": row["day"],
            "half_day": row["half_day"],
            "start": local("start_utc"),
            "end": local("end_utc"),
            "arrive_by": local("arrive_by_utc"),
            "report_ready_at": local("report_ready_utc"),
            "ordering_department_id": row["ordering_department_id"],
            "ordering_doctor_id": row["ordering_doctor_id"],
            "status": row["status"],
            "report_notified": row["report_notified_at"] is not None,
        }

    def list_exam_bookings(self: BookingService, patient_id: str) -> dict[str, Any]:
        def work(tx: Tx) -> Outcome:
            rows = tx.all(
                "SELECT * FROM exam_bookings WHERE patient_id = ? ORDER BY start_utc", (patient_id,)
            )
            return Outcome({"exam_bookings": [self._exam_view(r) for r in rows]})

        return self._run(work, write=False)

    def followup_offer(
        self, clinic_id: str, department_id: str | None, doctor_id: str | None
    ) -> dict[str, Any] | None:
        """The first free public slot with the ordering doctor, else in their department."""
        clinic = self.directory.clinics.get(clinic_id)
        if clinic is None or department_id is None or all(d.id != department_id for d in clinic.departments):
            return None
        days = self.open_days(clinic)
        self.ensure_days(clinic, days)
        now = store.utc_text(self.clock())
        day_texts = [d.isoformat() for d in days]

        def work(tx: Tx) -> Row | None:
            for doctor in ([doctor_id] if doctor_id else []) + [None]:
                rows = store.free_slots(
                    tx, clinic_id, department_id, day_texts, now, referral=False, doctor_id=doctor, limit=1
                )
                if rows:
                    return rows[0]
            return None

        row = self.db.run(work, write=False)
        return self.slot_view(row) if row else None

    def report_ready(self: BookingService, exam_booking_id: str) -> dict[str, Any]:
        """The exam's report is ready: the patient is notified ("report_ready") once, with an offer
        of the first free slot with the ordering doctor (or department) to read it (预就诊).
        -> {"exam_booking", "offer" (a slot or null), "notified" (false if told before)}."""

        def load(tx: Tx) -> Row:
            row = tx.one("SELECT * FROM exam_bookings WHERE exam_booking_id = ?", (exam_booking_id,))
            if row is None:
                raise BookingError(404, "exam_booking_not_found")
            return row

        row = self.db.run(load, write=False)
        offer = self.followup_offer(
            row["clinic_id"], row["ordering_department_id"], row["ordering_doctor_id"]
        )

        def work(tx: Tx) -> Outcome:
            now = store.utc_text(self.clock())
            first_time = tx.execute(
                "UPDATE exam_bookings SET report_notified_at = ? WHERE exam_booking_id = ? "
                "AND report_notified_at IS NULL",
                (now, exam_booking_id),
            )
            view = self._exam_view(load(tx))
            data = {"exam_booking": view, "offer": offer, "notified": bool(first_time)}
            notices = (
                [(row["patient_id"], "report_ready", {"exam_booking": view, "offer": offer})]
                if first_time
                else []
            )
            return Outcome(data, notices)

        return self._run(work)

    def due_reports(self: BookingService) -> int:
        """report_ready for every exam whose report time has passed and whose patient was not yet
        told; returns how many (the runtime polls this)."""
        now = store.utc_text(self.clock())
        rows = self.db.run(
            lambda tx: tx.all(
                "SELECT exam_booking_id FROM exam_bookings WHERE report_ready_utc <= ? "
                "AND report_notified_at IS NULL "
                "AND status = 'booked' ORDER BY report_ready_utc",
                (now,),
            ),
            write=False,
        )
        return sum(self.report_ready(r["exam_booking_id"])["notified"] for r in rows)
