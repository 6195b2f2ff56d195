"""Clinic catalogue (demo data files) and the numbered half-day slots generated from it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tools.booking.catalogue import (
    check_bookable,
    generate_slots,
    is_reserved_for_referral,
    load_directory,
    parse_slot_id,
    referral_count,
)
from tools.booking.errors import BookingDataError
from tools.departments import load_catalogue

TZ = ZoneInfo("Asia/Shanghai")
HOSPITAL = "demo-general-hospital"
MONDAY = date(2026, 11, 23)  # a Monday
CONTRACT_DEPARTMENTS = {
    "general_practice",
    "cardiology",
    "respiratory",
    "gastroenterology",
    "neurology",
    "endocrinology",
    "general_surgery",
    "orthopedics",
    "gynecology",
    "obstetrics",
    "pediatrics",
    "ophthalmology",
    "ent",
    "stomatology",
    "dermatology",
    "urology",
    "psychiatry",
    "tcm",
    "rehabilitation",
    "fever_clinic",
}
CONTRACT_EXAMS = {
    "blood_routine": [],
    "blood_biochem": ["fasting_8h"],
    "ultrasound_abdomen": ["fasting_8h"],
    "ultrasound_pelvis": ["full_bladder"],
    "ct": ["remove_metal"],
    "mri": ["remove_metal"],
    "ecg": [],
    "urine_routine": [],
}
EXAM_ROOMS = {"blood_draw", "ultrasound", "radiology_ct", "radiology_mri", "ecg_room"}


@pytest.fixture(scope="module")
def directory():
    return load_directory()


# ---- the demo data ----


def test_three_demo_clinics_with_contract_ids(directory) -> None:
    assert set(directory.clinics) == {HOSPITAL, "demo-chc-east", "demo-chc-lingxia"}
    assert all(c.demo for c in directory.clinics.values())
    hospital = directory.get(HOSPITAL)
    assert hospital.kind == "hospital" and hospital.map_id == HOSPITAL
    assert hospital.referral_share == 0.2 and hospital.referral_release_days == 2
    assert hospital.name.zh == "演示综合医院"
    assert directory.get("demo-chc-east").name.zh == "东城社区卫生服务中心"
    lingxia = directory.get("demo-chc-lingxia")
    assert lingxia.name.zh == "岭下镇卫生院" and lingxia.kind == "community"
    assert {"岭下村", "石门村"} <= {v.zh for v in lingxia.villages}


def test_every_data_file_says_demo_true() -> None:
    for path in Path("tools/data/clinics").glob("*.yaml"):
        assert yaml.safe_load(path.read_text(encoding="utf-8"))["demo"] is True, path


def test_hospital_books_the_contract_departments_in_their_rooms(directory) -> None:
    hospital = directory.get(HOSPITAL)
    assert {d.id for d in hospital.departments} >= CONTRACT_DEPARTMENTS
    known = set(load_catalogue().departments)
    for dept in hospital.departments:
        assert dept.id in known
        assert dept.room_id == f"clinic_{dept.id}"
        assert dept.doctors, dept.id
        assert dept.name.zh == load_catalogue().departments[dept.id].zh  # filled from the catalogue


def test_community_centres_book_primary_care(directory) -> None:
    for clinic_id in ("demo-chc-east", "demo-chc-lingxia"):
        depts = {d.id for d in directory.get(clinic_id).departments}
        assert {"general_practice", "tcm", "rehabilitation", "stomatology"} <= depts
        assert directory.get(clinic_id).referral_share == 0.0


def test_session_sizes_are_realistic(directory) -> None:
    for clinic in directory.clinics.values():
        for dept in clinic.departments:
            for doctor in dept.doctors:
                for session in doctor.sessions:
                    if clinic.kind == "hospital" and dept.id != "general_practice":
                        assert 20 <= session.slots <= 40, (doctor.id, session)
                    else:
                        assert 12 <= session.slots <= 30, (doctor.id, session)


def test_exams_and_preparations_match_the_contract(directory) -> None:
    hospital = directory.get(HOSPITAL)
    assert {e.id: e.preparation for e in hospital.exams} == CONTRACT_EXAMS
    assert {e.room_id for e in hospital.exams} == EXAM_ROOMS
    for prep in ("fasting_8h", "full_bladder", "remove_metal"):
        assert "空腹" in directory.preparation_text("fasting_8h", "zh")
        assert directory.preparation_text(prep, "en") != prep  # real instructions in both languages
        assert directory.preparation_text(prep, "zh") != directory.preparation_text(prep, "en")


def test_lookups_and_their_error_codes(directory) -> None:
    assert directory.department(HOSPITAL, "dermatology").room_id == "clinic_dermatology"
    assert directory.exam(HOSPITAL, "mri").report_hours == 24
    dept, doctor = directory.doctor(HOSPITAL, "derm-wei")
    assert dept.id == "dermatology" and doctor.name.zh == "魏素言"
    cases = [
        (lambda: directory.get("nowhere"), "unknown_clinic"),
        (lambda: directory.department(HOSPITAL, "astrology"), "unknown_department"),
        (lambda: directory.department("demo-chc-east", "cardiology"), "unknown_department"),
        (lambda: directory.exam("demo-chc-lingxia", "mri"), "unknown_exam"),
        (lambda: directory.doctor(HOSPITAL, "dr-nobody"), "unknown_doctor"),
    ]
    for call, code in cases:
        with pytest.raises(BookingDataError) as excinfo:
            call()
        assert excinfo.value.code == code
        assert excinfo.value.zh and excinfo.value.en and excinfo.value.zh != excinfo.value.en


def test_clinics_with_department_lists_community_centres_first(directory) -> None:
    assert [c.id for c in directory.clinics_with_department("general_practice")] == [
        "demo-chc-east",
        "demo-chc-lingxia",
        HOSPITAL,
    ]
    assert [c.id for c in directory.clinics_with_department("dermatology")] == [HOSPITAL]
    assert directory.clinics_with_department("neonatology") == []


def test_load_directory_is_cached_by_path(directory) -> None:
    assert load_directory(Path("tools/data/clinics")) is directory


# ---- slots ----


def test_slot_counts_per_session_and_ids(directory) -> None:
    hospital = directory.get(HOSPITAL)
    slots = generate_slots(hospital, MONDAY, 1)
    derm_am = [s for s in slots if s.doctor_id == "derm-wei" and s.half_day == "am"]
    assert len(derm_am) == 35  # "mon am 35"
    assert [s.number for s in derm_am] == list(range(1, 36))
    assert derm_am[0].slot_id == "demo-general-hospital:derm-wei:2026-11-23:am:01"
    assert not [s for s in slots if s.doctor_id == "derm-qu"]  # Wednesdays only
    # a Monday at the hospital: the sum of every Monday session
    expected = sum(
        s.slots for d in hospital.departments for doc in d.doctors for s in doc.sessions if s.weekday == 0
    )
    assert len(slots) == expected
    assert {s.half_day for s in slots} == {"am", "pm"}


def test_slot_times_divide_the_session_back_to_back(directory) -> None:
    derm = [s for s in generate_slots(directory.get(HOSPITAL), MONDAY, 1) if s.doctor_id == "derm-wei"]
    assert derm[0].start == datetime(2026, 11, 23, 8, 0, tzinfo=TZ)
    assert derm[-1].end == datetime(2026, 11, 23, 12, 0, tzinfo=TZ)
    assert all(a.end == b.start for a, b in zip(derm, derm[1:], strict=False))
    assert derm[0].start.utcoffset() == timedelta(hours=8)
    east = [s for s in generate_slots(directory.get("demo-chc-east"), MONDAY, 1) if s.doctor_id == "gp-qian"]
    assert len(east) == 20 and east[0].start.hour == 14 and east[-1].end.hour == 17  # its own hours


def test_generation_is_deterministic_and_ordered(directory) -> None:
    hospital = directory.get(HOSPITAL)
    first = generate_slots(hospital, MONDAY, 7)
    again = generate_slots(hospital, MONDAY, 7)
    assert [s.slot_id for s in first] == [s.slot_id for s in again]
    assert len({s.slot_id for s in first}) == len(first)
    keys = [(s.date, s.half_day) for s in first]
    assert keys == sorted(keys)
    assert generate_slots(hospital, MONDAY, 0) == []
    # Sunday: only paediatrics and the fever clinic see patients
    sunday = generate_slots(hospital, MONDAY + timedelta(days=6), 1)
    assert {s.department_id for s in sunday} == {"pediatrics", "fever_clinic"}


def test_referral_numbers_are_the_last_fifth_and_open_two_days_before(directory) -> None:
    hospital = directory.get(HOSPITAL)
    wednesday = MONDAY + timedelta(days=2)
    slots = [s for s in generate_slots(hospital, wednesday, 1) if s.doctor_id == "derm-qu"]
    assert len(slots) == 20
    reserved = [s.number for s in slots if s.referral_only]
    assert reserved == [17, 18, 19, 20]  # ceil(0.2 * 20) = 4
    release = datetime(2026, 11, 23, 0, 0, tzinfo=TZ)  # Wednesday minus 2 days, 00:00
    assert all(s.referral_release_at == release for s in slots if s.referral_only)
    assert all(s.referral_release_at is None for s in slots if not s.referral_only)
    assert referral_count(hospital, 35) == 7  # 0.2 * 35 must not round up to 8
    assert referral_count(hospital, 25) == 5
    assert referral_count(hospital, 22) == 5  # ceil(4.4)
    assert referral_count(directory.get("demo-chc-east"), 30) == 0


def test_referral_reservation_ends_at_release(directory) -> None:
    hospital = directory.get(HOSPITAL)
    friday = MONDAY + timedelta(days=4)
    slot = directory.slot(f"{HOSPITAL}:card-xu:2026-11-27:am:25")
    assert slot.referral_only and slot.date == friday
    before = datetime(2026, 11, 24, 23, 59, tzinfo=TZ)
    after = datetime(2026, 11, 25, 0, 0, tzinfo=TZ)
    assert is_reserved_for_referral(slot, before) and not is_reserved_for_referral(slot, after)
    with pytest.raises(BookingDataError) as excinfo:
        check_bookable(hospital, slot, before)
    assert excinfo.value.code == "referral_only" and "2026-11-25 00:00" in excinfo.value.zh
    check_bookable(hospital, slot, before, referral=True)  # a community-centre referral may book it
    check_bookable(hospital, slot, after)  # released: open to everyone


def test_booking_a_past_slot_is_refused(directory) -> None:
    hospital = directory.get(HOSPITAL)
    slot = directory.slot(f"{HOSPITAL}:gp-he:2026-11-23:am:01")  # 08:00-08:08
    with pytest.raises(BookingDataError) as excinfo:
        check_bookable(hospital, slot, datetime(2026, 11, 23, 8, 0, tzinfo=TZ))
    assert excinfo.value.code == "slot_in_past"
    with pytest.raises(BookingDataError):
        check_bookable(hospital, slot, datetime(2026, 11, 24, 9, 0, tzinfo=TZ))
    check_bookable(hospital, slot, datetime(2026, 11, 23, 7, 59, tzinfo=TZ))


def test_booking_beyond_the_window_is_refused(directory) -> None:
    hospital = directory.get(HOSPITAL)
    slot = directory.slot(f"{HOSPITAL}:gp-he:2026-12-07:am:01")
    with pytest.raises(BookingDataError) as excinfo:
        check_bookable(hospital, slot, datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    assert excinfo.value.code == "slot_not_open"
    check_bookable(hospital, slot, datetime(2026, 11, 30, 9, 0, tzinfo=TZ))


def test_parse_slot_id_round_trip_and_errors(directory) -> None:
    assert parse_slot_id("demo-chc-east:gp-zhao:2026-11-24:am:07") == (
        "demo-chc-east",
        "gp-zhao",
        date(2026, 11, 24),
        "am",
        7,
    )
    for bad in [
        "",
        "demo",
        "demo-chc-east:gp-zhao:2026-11-24:noon:07",
        "demo-chc-east:gp-zhao:2026-13-01:am:01",
        "demo-chc-east:gp-zhao:2026-11-24:am:00",
        "demo-chc-east:gp-zhao:2026-11-24:am:7",
        "a:b:c:d:e:f",
    ]:
        with pytest.raises(BookingDataError) as excinfo:
            parse_slot_id(bad)
        assert excinfo.value.code == "bad_slot_id", bad
    with pytest.raises(BookingDataError) as excinfo:
        directory.slot(f"{HOSPITAL}:derm-wei:2026-11-23:am:36")  # only 35 numbers
    assert excinfo.value.code == "unknown_slot"
    with pytest.raises(BookingDataError) as excinfo:
        directory.slot(f"{HOSPITAL}:derm-qu:2026-11-23:am:01")  # not her day
    assert excinfo.value.code == "unknown_slot"
    with pytest.raises(BookingDataError) as excinfo:
        directory.slot("nowhere:derm-qu:2026-11-23:am:01")
    assert excinfo.value.code == "unknown_clinic"


# ---- invalid data files ----


def _write_clinic(folder: Path, **changes: object) -> None:
    data = yaml.safe_load(Path("tools/data/clinics/demo-chc-lingxia.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    (folder / "clinic.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (folder / "preparations.yaml").write_text(
        Path("tools/data/clinics/preparations.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )


def test_a_valid_custom_folder_loads(tmp_path: Path) -> None:
    _write_clinic(tmp_path, id="my-clinic")
    assert list(load_directory(tmp_path).clinics) == ["my-clinic"]


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"id": "Bad_ID"}, "clinic id"),
        ({"departments": [{"id": "astrology", "doctors": []}]}, "astrology"),
        (
            {
                "departments": [
                    {
                        "id": "tcm",
                        "doctors": [
                            {
                                "id": "x",
                                "name": {"zh": "甲", "en": "A"},
                                "title": {"zh": "医师", "en": "Doctor"},
                                "sessions": ["funday am 10"],
                            }
                        ],
                    }
                ]
            },
            "funday",
        ),
        ({"referral_share": 0.9}, "referral_share"),
        ({"session_times": {"am_start": "12:00", "am_end": "08:00"}}, "session_times"),
        (
            {
                "exams": [
                    {
                        "id": "x",
                        "name": {"zh": "甲", "en": "A"},
                        "room_id": "r",
                        "preparation": ["holding_breath"],
                        "duration_min": 5,
                        "report_hours": 1,
                        "capacity_per_half_day": 5,
                    }
                ]
            },
            "holding_breath",
        ),
    ],
)
def test_invalid_data_files_raise_a_clear_error(tmp_path: Path, changes: dict, detail: str) -> None:
    _write_clinic(tmp_path, **changes)
    with pytest.raises(BookingDataError) as excinfo:
        load_directory(tmp_path)
    assert excinfo.value.code == "bad_clinic_file"
    assert detail in excinfo.value.en


def test_broken_yaml_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(BookingDataError) as excinfo:
        load_directory(tmp_path)
    assert excinfo.value.code == "bad_clinic_file" and "broken.yaml" in excinfo.value.en
    with pytest.raises(BookingDataError):
        load_directory(tmp_path / "missing")


def test_every_error_code_raised_has_messages_in_both_languages() -> None:
    import re

    from tools.booking.errors import MESSAGES

    sources = "".join(
        Path(f"tools/booking/{name}.py").read_text(encoding="utf-8")
        for name in ("catalogue", "dates", "exams", "fhir")
    )
    codes = set(re.findall(r'(?:BookingDataError|DateParseError)\(\s*"([a-z_]+)"', sources))
    assert codes and codes <= set(MESSAGES)
    for zh, en in MESSAGES.values():
        assert zh and en and zh != en
