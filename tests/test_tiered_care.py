"""Tiered care near the patient (tools/tiered_care.py): areas, nearest centres, family doctor teams,
mobile clinic timetables and the link from triage's care setting."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from knowledge.corpus import check_parallel_languages, load_corpus, parse_document
from tools.tiered_care import (
    DATA_FILE,
    Stop,
    TieredCareError,
    load_tiered_care,
    nearest_services,
    next_mobile_visit,
    parse_rrule,
    primary_care_options,
    resolve_area,
    upcoming_mobile_visits,
)
from tools.triage_models import CareSetting

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORPUS = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"
TUESDAY = date(2026, 11, 24)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI)


# ------------------------------------------------------------------------------------- the data


def test_data_is_demo_and_holds_the_contract_centres() -> None:
    data = load_tiered_care()
    assert data.demo is True
    ids = {s.id for s in data.services}
    assert {"demo-chc-east", "demo-chc-lingxia", "demo-general-hospital"} <= ids
    assert data.service("demo-chc-lingxia").name.zh == "岭下镇卫生院"
    assert {"岭下村", "石门村"} <= {a.name.zh for a in data.areas}


def test_data_source_resolves_to_a_parallel_corpus_document() -> None:
    data = load_tiered_care()
    zh = parse_document(CORPUS / f"{data.source.doc_id}.zh.md")
    assert data.source.section in {s.section_id for s in zh.sections}
    docs = [d for d in load_corpus(CORPUS) if d.doc_id == "mobile-clinics"]
    assert sorted(d.language for d in docs) == ["en", "zh"]
    assert check_parallel_languages(docs) == []
    for doc in docs:  # our own words, each section with its citation line
        for section in doc.sections:
            assert re.search(r"（依据：.+，20\d\d|\(Source: .+, 20\d\d", section.text), section.section_id
        assert "120" in next(s.text for s in doc.sections if s.section_id == "when-not-to-wait")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "service: demo-chc-lingxia\n    team: fd-lingxia-1",
            "service: nowhere\n    team: fd-lingxia-1",
            "nowhere",
        ),
        ("areas: [zhuxi_village, fengshuwan_village]", "areas: [atlantis]", "atlantis"),
        ('rrule: "FREQ=WEEKLY;BYDAY=FR"', 'rrule: "FREQ=DAILY"', "FREQ"),
        ('start: "09:00", end: "11:00"', 'start: "11:00", end: "09:00"', "not after start"),
        (
            '"FREQ=WEEKLY;INTERVAL=2;BYDAY=TH", dtstart: "2026-01-08"',
            '"FREQ=WEEKLY;INTERVAL=2;BYDAY=TH"',
            "dtstart",
        ),
    ],
)
def test_broken_data_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = DATA_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "tiered_care.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_tiered_care(path)


# ---------------------------------------------------------------------------------------- areas


@pytest.mark.parametrize(
    ("text", "area_id"),
    [
        ("我住在岭下村", "lingxia_village"),
        ("石门村", "shimen_village"),
        ("石门", "shimen_village"),
        ("岭下镇", "lingxia_town"),  # the longer name wins over the village alias 岭下
        ("下一次巡回医疗车什么时候到岭下村？", "lingxia_village"),
        ("I live in Shimen Village", "shimen_village"),
        ("lingxia", "lingxia_village"),
        ("东城", "dongcheng"),
    ],
)
def test_resolve_area(text: str, area_id: str) -> None:
    assert resolve_area(text).id == area_id


@pytest.mark.parametrize("text", ["火星村", "", "   ", "我住在这里", "shimenxyz"])
def test_unknown_area(text: str) -> None:
    with pytest.raises(TieredCareError) as info:
        resolve_area(text)
    assert info.value.code == "unknown_area"
    assert "村" in info.value.zh and "village" in info.value.en


# ------------------------------------------------------------------------------------- services


def test_nearest_services_are_sorted_by_distance() -> None:
    options = nearest_services("石门村")
    assert [o.service_id for o in options][:2] == ["demo-vc-shimen", "demo-chc-lingxia"]
    assert [o.distance_km for o in options] == sorted(o.distance_km for o in options)
    township = options[1]
    assert [t.id for t in township.family_doctor_teams] == ["fd-lingxia-1"]  # the team covering 石门村


def test_nearest_services_filter_by_kind() -> None:
    assert [o.kind for o in nearest_services("东城街道", "hospital")] == ["hospital"]
    assert nearest_services("东城街道", "chc")[0].service_id == "demo-chc-east"
    assert {o.kind for o in nearest_services("竹溪村", "primary", limit=10)} <= {
        "chc",
        "township",
        "village_clinic",
    }
    with pytest.raises(TieredCareError) as info:
        nearest_services("东城", "spa")
    assert info.value.code == "unknown_kind"


# ------------------------------------------------------------------------------- mobile clinics


def test_next_visit_later_today() -> None:
    visit = next_mobile_visit("下一次巡回医疗车什么时候到岭下村？", at(TUESDAY, 8, 0))
    assert visit.start == at(TUESDAY, 9, 0) and visit.end == at(TUESDAY, 11, 30)
    assert visit.place.zh == "岭下村村委会" and not visit.in_progress
    assert "王医生团队" in visit.team.zh and "Dr Wang" in visit.team.en
    assert "量血压" in visit.offers.zh
    assert "11月24日（周二） 09:00-11:30" in visit.text("zh") and "岭下村村委会" in visit.text("zh")
    assert "Tue 24 Nov" in visit.text("en")


def test_visit_in_progress_is_still_the_next_visit() -> None:
    visit = next_mobile_visit("岭下村", at(TUESDAY, 10, 15))
    assert visit.start == at(TUESDAY, 9, 0) and visit.in_progress
    assert visit.text("zh").startswith("巡回医疗正在进行")


def test_when_todays_visit_has_ended_the_next_one_is_next_week() -> None:
    visit = next_mobile_visit("岭下村", at(TUESDAY, 11, 30))  # it ends at 11:30
    assert visit.start == at(date(2026, 12, 1), 9, 0)
    assert visit.start.weekday() == 1


def test_utc_and_naive_now_are_read_in_the_clinic_time_zone() -> None:
    # 03:00 UTC is 11:00 in Shanghai: the visit is on
    assert next_mobile_visit("岭下村", datetime(2026, 11, 24, 3, 0, tzinfo=UTC)).in_progress
    assert next_mobile_visit("岭下村", datetime(2026, 11, 24, 11, 0)).in_progress


def test_other_villages_have_their_own_stops() -> None:
    visit = next_mobile_visit("石门村", at(TUESDAY, 12, 0))
    assert visit.place.zh == "石门村文化礼堂" and visit.start == at(TUESDAY, 14, 0)


def test_every_other_week_counts_from_dtstart() -> None:
    visits = upcoming_mobile_visits("枫树湾村", at(TUESDAY, 8, 0), count=3)
    own = [v.start.date() for v in visits if v.area_id == "fengshuwan_village"]
    assert own[:2] == [date(2026, 11, 26), date(2026, 12, 10)]  # not 3 December


def test_cancelled_day_is_skipped() -> None:
    visit = next_mobile_visit("枫树湾村", at(date(2026, 9, 30), 8, 0))
    assert visit.start.date() == date(2026, 10, 15)  # 1 October (National Day) is an exdate


def test_monthly_outreach_day_serves_the_villages_it_names() -> None:
    visits = upcoming_mobile_visits("竹溪村", at(TUESDAY, 8, 0), count=3)
    outreach = [v for v in visits if v.route_id == "hospital-outreach"]
    assert outreach and outreach[0].start == at(date(2026, 12, 5), 8, 30)  # first Saturday of December
    assert outreach[0].distance_km > 0  # it is held in the township, not in 竹溪村 itself
    assert [v.start for v in visits] == sorted(v.start for v in visits)


def test_area_without_any_stop_nearby_gets_the_nearest_centre_instead() -> None:
    with pytest.raises(TieredCareError) as info:
        next_mobile_visit("东城街道", at(TUESDAY, 8, 0))
    assert info.value.code == "no_mobile_clinic"
    assert "东城社区卫生服务中心" in info.value.zh and "Dongcheng Community Health Centre" in info.value.en


def test_unknown_village_for_the_mobile_clinic() -> None:
    with pytest.raises(TieredCareError) as info:
        next_mobile_visit("火星村", at(TUESDAY, 8, 0))
    assert info.value.code == "unknown_area"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=DAILY;BYDAY=MO", "FREQ"),
        ("FREQ=WEEKLY", "BYDAY is required"),
        ("FREQ=WEEKLY;BYDAY=XX", "bad BYDAY"),
        ("FREQ=WEEKLY;BYDAY=1MO", "week number"),
        ("FREQ=MONTHLY;BYDAY=MO", "MONTHLY needs"),
        ("FREQ=WEEKLY;INTERVAL=0;BYDAY=MO", "INTERVAL"),
    ],
)
def test_bad_rrules_are_refused(rule: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rrule(rule)


def test_last_weekday_of_the_month() -> None:
    stop = Stop(
        area="x", place={"zh": "x", "en": "x"}, rrule="FREQ=MONTHLY;BYDAY=-1FR", start="09:00", end="10:00"
    )
    fridays = [date(2026, 11, d) for d in (6, 13, 20, 27)]
    assert [d for d in fridays if stop.occurs_on(d)] == [date(2026, 11, 27)]


# ------------------------------------------------------------------------- from triage to a place


def test_community_care_lists_primary_care_and_the_family_doctor() -> None:
    options = primary_care_options(CareSetting.community, "我住在石门村")
    assert options.services[0].service_id == "demo-vc-shimen"
    assert {s.kind for s in options.services} <= {"chc", "township", "village_clinic"}
    assert [t.id for t in options.family_doctor_teams] == ["fd-lingxia-1"]
    assert ("tiered-care", "community") in {(c.doc_id, c.section) for c in options.citations}


@pytest.mark.parametrize("setting", ["ambulance_ed", "emergency_department"])
def test_emergencies_get_no_primary_care_only_120(setting: str) -> None:
    options = primary_care_options(setting, "石门村")
    assert options.services == [] and options.family_doctor_teams == []
    assert "120" in options.note.zh and "120" in options.note.en


def test_hospital_clinic_points_to_the_hospital_and_the_referring_family_doctor() -> None:
    options = primary_care_options("hospital_clinic", "东城街道")
    assert options.services[0].kind == "hospital"
    assert [t.id for t in options.family_doctor_teams] == ["fd-east-1"]
    assert "转诊" in options.note.zh


def test_home_care_still_names_where_to_go_if_it_gets_worse() -> None:
    options = primary_care_options("home", "枫树湾村")
    assert options.services and [t.id for t in options.family_doctor_teams] == ["fd-lingxia-2"]


def test_bad_care_setting_and_unknown_area_are_errors() -> None:
    with pytest.raises(TieredCareError) as info:
        primary_care_options("spa_day", "石门村")
    assert info.value.code == "unknown_care_setting"
    with pytest.raises(TieredCareError) as info:
        primary_care_options("community", "火星村")
    assert info.value.code == "unknown_area"


def test_data_copy_round_trip(tmp_path: Path) -> None:
    shutil.copy(DATA_FILE, tmp_path / "tiered_care.yaml")
    data = load_tiered_care(tmp_path / "tiered_care.yaml")
    raw = yaml.safe_load(DATA_FILE.read_text(encoding="utf-8"))
    assert len(data.mobile_clinics) == len(raw["mobile_clinics"])
    assert next_mobile_visit("岭下村", at(TUESDAY, 8, 0), data=data).place.zh == "岭下村村委会"
