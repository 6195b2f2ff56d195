"""The visit state machine and its guidance (tools/visit_escort.py), without a server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools.visit_escort import (
    EVENTS,
    EscortError,
    Step,
    VisitState,
    allowed_events,
    guidance,
    load_steps,
    new_visit,
    path_of,
    place_node,
    plan,
    remaining_steps,
    transition,
)

CORPUS = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"
T0 = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
DATA = load_steps()


def start(appointment: str | None = "appt-1", dept: str = "dermatology") -> VisitState:
    return new_visit("v-1", "p-1", "demo-general-hospital", dept, T0, appointment_id=appointment)


def run(state: VisitState, *events: str | tuple[str, dict]) -> VisitState:
    at = T0
    for item in events:
        event, data = (item, None) if isinstance(item, str) else item
        at += timedelta(minutes=10)
        state = transition(state, event, at, data)
    return state


def consulted(**outcome: object) -> VisitState:
    return run(start(), "check_in", "queued", "called", ("consult_done", dict(outcome)))


# ------------------------------------------------------------------------------ transitions


def test_full_visit_walks_every_step_in_order_and_keeps_a_history() -> None:
    state = run(
        start(),
        "check_in",
        "queued",
        "called",
        ("consult_done", {"exams": ["blood_routine"], "has_prescription": True}),
        "paid",
        "exam_done",
        "medicine_collected",
        "report_ready",
        ("follow_up_booked", {"appointment_id": "appt-2"}),
    )
    assert state.step == Step.done
    assert [h.step for h in state.history] == list(Step)
    assert [h.event for h in state.history][:3] == [None, "check_in", "queued"]
    assert state.history[0].at == T0 and state.history[-1].at == T0 + timedelta(minutes=90)
    assert state.paid and state.exams_done == ["blood_routine"] and state.exams_pending == []
    assert state.follow_up_appointment_id == "appt-2"
    assert allowed_events(state) == []


def test_transition_does_not_change_its_input() -> None:
    before = start()
    after = transition(before, "check_in", T0)
    assert before.step == Step.registered and len(before.history) == 1
    assert after.step == Step.checked_in and len(after.history) == 2


def test_nothing_ordered_ends_the_visit_after_the_consultation() -> None:
    state = consulted()
    assert state.step == Step.done
    assert path_of(state)[-2:] == [Step.consulting, Step.done]


def test_medicine_only_skips_exams_reports_and_follow_up() -> None:
    state = consulted(has_prescription=True)
    assert remaining_steps(state) == [Step.paying, Step.pharmacy, Step.done]
    state = run(state, "paid", "medicine_collected")
    assert state.step == Step.done


def test_exams_only_skip_the_pharmacy_and_come_back_with_the_reports() -> None:
    state = consulted(exams=["ecg"])
    assert remaining_steps(state) == [Step.paying, Step.exams, Step.reports, Step.follow_up, Step.done]
    state = run(state, "paid", "exam_done", "report_ready")
    assert state.step == Step.follow_up
    assert run(state, "finish").step == Step.done


def test_follow_up_can_be_switched_off_or_on_explicitly() -> None:
    assert Step.follow_up not in remaining_steps(consulted(exams=["ecg"], follow_up=False))
    assert Step.follow_up in remaining_steps(consulted(has_prescription=True, follow_up=True))


def test_pay_later_moves_payment_to_the_end() -> None:
    state = consulted(exams=["blood_routine"], has_prescription=True, pay_later=True)
    assert remaining_steps(state) == [
        Step.exams,
        Step.pharmacy,
        Step.reports,
        Step.paying,
        Step.follow_up,
        Step.done,
    ]
    state = run(state, "exam_done", "medicine_collected", "report_ready")
    assert state.step == Step.paying
    settle = guidance(state, T0, "zh")
    assert "先诊疗后付费" in settle.what_next and "结清" in settle.what_next
    assert run(state, "paid").step == Step.follow_up


def test_several_exams_stay_in_the_exam_step_room_by_room() -> None:
    state = run(consulted(exams=["blood_biochem", "ultrasound_abdomen"]), "paid")
    first = guidance(state, T0, "zh")
    assert first.step == Step.exams and first.where.node_id == "blood_draw"
    assert "空腹血生化" in first.what_next and "2" in first.what_next
    assert first.route_from == "payment_counter"
    state = run(state, ("exam_done", {"exam_id": "blood_biochem"}))
    second = guidance(state, T0, "en")
    assert state.step == Step.exams and second.where.node_id == "ultrasound"
    assert second.route_from == "blood_draw"  # from the room just left
    assert "abdominal ultrasound" in second.what_next
    state = run(state, "exam_done")
    assert state.step == Step.reports and state.exams_finished_at is not None


def test_check_in_may_be_called_straight_into_the_room() -> None:
    assert run(start(), "check_in", "called").step == Step.consulting


def test_cancel_ends_the_visit_from_any_unfinished_step() -> None:
    state = run(start(), "check_in", "queued", "cancel")
    assert state.step == Step.done and state.cancelled
    assert "取消" in guidance(state, T0, "zh").what_next
    assert remaining_steps(state) == [Step.done]


# ------------------------------------------------------------------------------ bad input


def test_an_event_at_the_wrong_step_names_the_current_step_in_both_languages() -> None:
    with pytest.raises(EscortError) as info:
        transition(start(), "paid", T0)
    err = info.value
    assert err.code == "bad_transition"
    assert "挂号" in err.zh and "check_in" in err.zh
    assert "Registration" in err.en and "check_in" in err.en
    assert err.message("en") == err.en and err.message(None) == f"{err.zh} / {err.en}"


def test_no_event_moves_a_finished_visit() -> None:
    done = consulted()
    for event in EVENTS:
        with pytest.raises(EscortError) as info:
            transition(done, event, T0)
        assert info.value.code == "bad_transition"
        assert "就诊结束" in info.value.zh


@pytest.mark.parametrize(
    ("event", "data", "code", "needle"),
    [
        ("teleport", None, "unknown_event", "teleport"),
        ("consult_done", {"has_exams": "perhaps"}, "bad_event_data", "has_exams"),
        ("consult_done", {"exams": "ct"}, "bad_event_data", "exams"),
        ("consult_done", {"surgery": True}, "bad_event_data", "surgery"),
        ("consult_done", {"exams": ["ct", "xray_room_99"]}, "unknown_exam", "xray_room_99"),
    ],
)
def test_bad_events_and_data_are_rejected_with_clear_errors(
    event: str, data: dict | None, code: str, needle: str
) -> None:
    state = run(start(), "check_in", "called")
    with pytest.raises(EscortError) as info:
        transition(state, event, T0, data)
    assert info.value.code == code
    assert needle in info.value.zh and needle in info.value.en
    assert state.step == Step.consulting  # nothing changed


def test_an_exam_not_ordered_cannot_be_marked_done() -> None:
    state = run(consulted(exams=["ecg"]), "paid")
    with pytest.raises(EscortError) as info:
        transition(state, "exam_done", T0, {"exam_id": "mri"})
    assert info.value.code == "exam_not_pending" and "ecg" in info.value.en


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(start(), "check_in", datetime(2026, 11, 23, 8, 30))


# ------------------------------------------------------------------------------ guidance


def test_registered_guidance_in_chinese_and_english() -> None:
    zh = guidance(start(), T0, "zh")
    assert (zh.title, zh.where.node_id) == ("挂号", "self_service_kiosk")
    assert "报到" in zh.what_next and "皮肤科" in zh.what_next
    assert any("身份证" in b for b in zh.bring) and any("医保电子凭证" in b for b in zh.bring)
    assert zh.how_long == 5 and zh.how_long_text == "约 5 分钟"
    en = guidance(start(), T0, "en")
    assert en.title == "Registration" and "Dermatology" in en.what_next
    assert any("ID card" in b for b in en.bring)
    assert en.source.doc_id == "hospital-visit-process" and en.source.section == "registration"


def test_a_walk_in_is_sent_to_register_first() -> None:
    walk_in = guidance(start(appointment=None), T0, "zh")
    assert walk_in.where.node_id == "registration_hall"
    assert "还没有挂号" in walk_in.what_next


def test_waiting_estimate_is_patients_ahead_times_department_minutes() -> None:
    state = run(start(), "check_in", "queued").model_copy(update={"queue_number": 7})
    zh = guidance(state, T0, "zh", queue_ahead=4)
    assert zh.how_long == 4 * DATA.consult_minutes["dermatology"]
    assert "7" in zh.what_next and "4" in zh.what_next and str(zh.how_long) in zh.what_next
    assert zh.where.node_id == "clinic_dermatology" and zh.where.name == "皮肤科诊区"
    assert zh.queue_ahead == 4 and zh.queue_number == 7
    assert any("120" in tip for tip in zh.tips)  # getting worse while waiting
    assert guidance(state, T0, "en", queue_ahead=4, minutes_per_patient=12).how_long == 48
    other = run(start(dept="cardiology"), "check_in", "queued")
    assert guidance(other, T0, queue_ahead=3).how_long == 3 * DATA.consult_minutes["default"]
    assert guidance(other, T0, queue_ahead=0).how_long_text == "马上"


def test_payment_guidance_explains_the_three_ways_to_pay() -> None:
    state = consulted(has_prescription=True)
    zh = guidance(state, T0, "zh")
    assert zh.where.node_id == "payment_counter"
    tips = " ".join(zh.tips)
    for method in ("诊间支付", "医保电子凭证", "先诊疗后付费", "国家医保服务平台"):
        assert method in tips
    en = " ".join(guidance(state, T0, "en").tips)
    assert "consulting room" in en and "e-certificate" in en and "pay later" in en


def test_report_wait_shrinks_as_time_passes() -> None:
    state = run(consulted(exams=["ct"]), "paid", "exam_done")
    finished = state.exams_finished_at
    assert finished is not None
    longest = DATA.exams["ct"].report_minutes
    assert guidance(state, finished, "en").how_long == longest + DATA.steps[Step.reports].minutes
    later = guidance(state, finished + timedelta(minutes=100), "zh")
    assert f"{longest - 100} 分钟" in later.what_next
    assert guidance(state, finished + timedelta(hours=5), "zh").how_long == DATA.steps[Step.reports].minutes


def test_visit_language_is_the_default() -> None:
    state = start().model_copy(update={"lang": "en"})
    assert guidance(state, T0).lang == "en" and guidance(state, T0).title == "Registration"


# ------------------------------------------------------------------------------ plan


def test_plan_before_the_consultation_marks_the_steps_that_may_be_skipped() -> None:
    result = plan(run(start(), "check_in"), T0, "zh", queue_ahead=2)
    assert [item.step for item in result.steps] == list(Step)[1:]
    maybe = {item.step for item in result.steps if item.maybe}
    assert maybe == {Step.paying, Step.exams, Step.pharmacy, Step.reports, Step.follow_up}
    assert result.total_minutes == sum(item.how_long for item in result.steps)
    assert result.qr_text.splitlines()[0].endswith("v-1") and "缴费?" in result.qr_text


def test_plan_after_the_consultation_lists_places_and_routes_between_them() -> None:
    result = plan(consulted(exams=["blood_routine"], has_prescription=True), T0, "en")
    nodes = [item.where.node_id for item in result.steps]
    assert nodes == [
        "payment_counter",
        "blood_draw",
        "pharmacy",
        "report_printer",
        "clinic_dermatology",
        None,
    ]
    assert [item.route_from for item in result.steps[1:4]] == ["payment_counter", "blood_draw", "pharmacy"]
    assert not any(item.maybe for item in result.steps)
    assert all(item.bring for item in result.steps[:-1])
    assert len(result.qr_text) < 600


# ------------------------------------------------------------------------------ data file


def _sections(doc: str, lang: str) -> set[str]:
    text = (CORPUS / f"{doc}.{lang}.md").read_text(encoding="utf-8")
    return set(re.findall(r"\{#([^}\s]+)\}", text))


def test_every_step_cites_a_corpus_section_in_both_languages() -> None:
    sources = [DATA.source] + [text.source for text in DATA.steps.values()]
    for source in sources:
        for lang in ("zh", "en"):
            assert source.section in _sections(source.doc_id, lang), (source, lang)


def test_data_covers_the_contract_exams_and_places() -> None:
    contract_exams = {
        "blood_routine",
        "blood_biochem",
        "ultrasound_abdomen",
        "ultrasound_pelvis",
        "ct",
        "mri",
        "ecg",
        "urine_routine",
    }
    assert contract_exams <= set(DATA.exams)
    contract_nodes = {
        "registration_hall",
        "payment_counter",
        "self_service_kiosk",
        "pharmacy",
        "report_printer",
        "blood_draw",
        "ultrasound",
        "radiology_ct",
        "radiology_mri",
        "ecg_room",
        "information_desk",
    }
    assert set(DATA.places) <= contract_nodes


def test_a_broken_data_file_is_refused_with_its_name(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parent.parent / "tools" / "data" / "visit_steps.yaml").read_text(
        encoding="utf-8"
    )
    broken = tmp_path / "steps.yaml"
    broken.write_text(text.replace("bring: [prescription, visit_card]", "bring: [passport_photo]"), "utf-8")
    with pytest.raises(ValueError, match="passport_photo") as info:
        load_steps(broken)
    assert "steps.yaml" in str(info.value)


def test_every_place_the_escort_sends_people_exists_on_the_demo_hospital_map() -> None:
    navigation = pytest.importorskip("tools.navigation")
    hmap = navigation.load_map("demo-general-hospital")
    rooms = {*DATA.places, *(exam.room for exam in DATA.exams.values())}
    rooms |= {place_node(start(dept=d), DATA, Step.consulting) for d in ("dermatology", "cardiology", "ent")}
    assert {room for room in rooms if room not in hmap.nodes} == set()
    route = navigation.find_route(hmap, "payment_counter", "blood_draw")
    assert route.nodes[0] == "payment_counter" and route.nodes[-1] == "blood_draw"
