"""In-hospital navigation (tools/navigation.py) on the demo hospital map and small test maps."""

from __future__ import annotations

import heapq
import math
import os
import random
import shutil
from pathlib import Path

import pytest

from tools.departments import load_catalogue
from tools.navigation import (
    NOT_STEP_FREE,
    HospitalMap,
    MapDataError,
    NavigationError,
    find_route,
    load_map,
    resolve_place,
    route_floors,
)

FIXTURE_MAPS = Path(__file__).parent / "fixtures" / "maps"
DEMO = load_map("demo-general-hospital")

CONTRACT_NODES = [
    "entrance_main", "entrance_north", "entrance_emergency", "information_desk", "registration_hall",
    "payment_counter", "self_service_kiosk", "pharmacy", "report_printer", "blood_draw", "ultrasound",
    "radiology_ct", "radiology_mri", "ecg_room", "emergency_room",
]  # fmt: skip
BOOKED_DEPARTMENTS = [
    "general_practice", "cardiology", "respiratory", "gastroenterology", "neurology", "endocrinology",
    "general_surgery", "orthopedics", "gynecology", "obstetrics", "pediatrics", "ophthalmology", "ent",
    "stomatology", "dermatology", "urology", "psychiatry", "tcm", "rehabilitation", "fever_clinic",
]  # fmt: skip


def _kinds(plan_edges: list) -> set[str]:
    return {e.kind for e in plan_edges}


# ------------------------------------------------------------------------------------- the data


def test_demo_map_has_every_node_the_other_parts_reference() -> None:
    assert DEMO.demo is True
    missing = [n for n in CONTRACT_NODES if n not in DEMO.nodes]
    missing += [f"clinic_{d}" for d in BOOKED_DEPARTMENTS if f"clinic_{d}" not in DEMO.nodes]
    assert missing == []
    catalogue = load_catalogue()
    for node_id in DEMO.nodes:
        if node_id.startswith("clinic_"):
            assert node_id.removeprefix("clinic_") in catalogue.departments, node_id
    for node in DEMO.places():
        assert node.name and node.name.zh and node.name.en, node.id


def test_demo_map_has_the_promised_shape() -> None:
    assert {b: spec.floors for b, spec in DEMO.buildings.items()} == {
        "A": [1, 2, 3, 4, 5],
        "B": [1, 2, 3],
        "E": [1],
    }
    kinds = {n.kind for n in DEMO.nodes.values()}
    assert kinds == {"room", "corridor", "lift", "stairs", "escalator", "entrance", "landmark"}
    landmarks = {DEMO.label(n.id, "zh") for n in DEMO.nodes.values() if n.kind == "landmark"}
    assert {"咖啡店", "便利店", "中庭喷泉"} <= landmarks


def test_every_place_is_reachable_and_all_but_the_mezzanine_step_free() -> None:
    not_step_free = []
    for node in DEMO.places():
        find_route(DEMO, "entrance_main", node.id)  # raises if not connected
        try:
            find_route(DEMO, "entrance_main", node.id, step_free=True)
        except NavigationError as exc:
            assert exc.code == "no_step_free_route"
            not_step_free.append(node.id)
    assert not_step_free == ["medical_records"]


# --------------------------------------------------------------------------------- shortest path


def _reference_seconds(hmap: HospitalMap, start: str, goal: str, step_free: bool) -> float:
    """An independent shortest-time search (plain Dijkstra over the arcs) to check find_route."""
    dist = {start: 0.0}
    heap = [(0.0, start)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, math.inf):
            continue
        for arc in hmap.arcs[node]:
            if step_free and arc.kind in NOT_STEP_FREE:
                continue
            if d + arc.seconds < dist.get(arc.to, math.inf):
                dist[arc.to] = d + arc.seconds
                heapq.heappush(heap, (d + arc.seconds, arc.to))
    return dist[goal]


def test_route_is_the_fastest_one_for_random_pairs() -> None:
    places = sorted(n.id for n in DEMO.places() if n.id != "medical_records")
    rng = random.Random(7)
    for _ in range(40):
        start, goal = rng.sample(places, 2)
        for step_free in (False, True):
            plan = find_route(DEMO, start, goal, step_free=step_free)
            assert plan.seconds == pytest.approx(_reference_seconds(DEMO, start, goal, step_free), abs=0.15)
            assert plan.nodes[0] == start and plan.nodes[-1] == goal
            assert len(plan.edges) == len(plan.nodes) - 1


def test_known_route_takes_the_stairs_when_they_are_quickest() -> None:
    plan = find_route(DEMO, "entrance_main", "clinic_dermatology")
    # 73.4 m of walking (61.2 s) plus two flights of the east stairs (2 x 15 s)
    assert "stairs" in _kinds(plan.edges) and "lift" not in _kinds(plan.edges)
    assert "A_stairs_east_f1" in plan.nodes and "A_stairs_east_f3" in plan.nodes
    assert plan.seconds == pytest.approx(91.2, abs=0.2)
    assert plan.minutes == 2
    assert any("走楼梯上到3楼" in s.text_zh for s in plan.steps)
    assert any("Take the stairs up to floor 3" in s.text_en for s in plan.steps)


def test_step_free_route_takes_the_lift_and_is_a_little_slower() -> None:
    plain = find_route(DEMO, "entrance_main", "clinic_dermatology")
    step_free = find_route(DEMO, "entrance_main", "clinic_dermatology", step_free=True)
    assert not _kinds(step_free.edges) & NOT_STEP_FREE
    assert "lift" in _kinds(step_free.edges)
    # walking 73.4 m (61.2 s) + lift wait/ride 45 s + 5 s for the extra floor
    assert 100 <= step_free.seconds <= 125
    assert step_free.seconds > plain.seconds
    assert step_free.minutes == 2
    assert step_free.metres == pytest.approx(73.4, abs=0.5)


def test_step_free_from_the_north_door_uses_the_ramp_not_the_steps() -> None:
    plain = find_route(DEMO, "entrance_north", "registration_hall")
    assert plain.edges[0].kind == "stairs"  # three steps are quicker than the ramp
    step_free = find_route(DEMO, "entrance_north", "registration_hall", step_free=True)
    assert step_free.edges[0].kind == "ramp"
    assert "坡道" in step_free.steps[1].text_zh and "ramp" in step_free.steps[1].text_en


def test_stairs_only_room_has_no_step_free_route() -> None:
    plan = find_route(DEMO, "entrance_main", "medical_records")
    assert any(e.kind == "stairs" and e.b == "B3_mezzanine" for e in plan.edges)
    with pytest.raises(NavigationError) as info:
        find_route(DEMO, "entrance_main", "medical_records", step_free=True)
    assert info.value.code == "no_step_free_route"
    assert "病案复印室" in info.value.zh and "无台阶" in info.value.zh
    assert "step-free" in info.value.en and "Medical records" in info.value.en


def test_disconnected_floor_has_no_route() -> None:
    hmap = load_map("disconnected-test", FIXTURE_MAPS)
    assert find_route(hmap, "door", "lab").nodes[-1] == "lab"
    for step_free in (False, True):
        with pytest.raises(NavigationError) as info:
            find_route(hmap, "door", "island_room", step_free=step_free)
        assert info.value.code == "no_route"  # not "no_step_free_route": nothing connects at all
        assert "孤岛诊室" in info.value.zh and "Island room" in info.value.en


def test_same_start_and_goal_is_a_one_step_plan() -> None:
    plan = find_route(DEMO, "pharmacy", "药房")
    assert plan.nodes == ["pharmacy"] and plan.seconds == 0 and plan.minutes == 1
    assert "已经在这里" in plan.steps[0].text_zh and "already there" in plan.steps[0].text_en


# ---------------------------------------------------------------------------------- directions


def test_directions_mention_the_lift_floor_and_landmarks_in_both_languages() -> None:
    plan = find_route(DEMO, "entrance_main", "clinic_dermatology", step_free=True)
    zh = [s.text_zh for s in plan.steps]
    en = [s.text_en for s in plan.steps]
    assert "乘电梯到3楼。" in zh and "Take the lift to floor 3." in en
    assert any("经过中庭喷泉" in t for t in zh) and any("passing the atrium fountain" in t for t in en)
    assert any("经过三楼候诊区" in t for t in zh)
    walk_with_landmark = next(s for s in plan.steps if s.landmark is not None)
    assert walk_with_landmark.landmark.zh == "中庭喷泉"
    assert plan.steps[0].kind == "start" and "门诊楼正门" in zh[0]
    assert plan.steps[-1].kind == "arrive"
    assert "到达皮肤科诊室（门诊楼3楼）" in zh[-1] and "Dermatology clinic" in en[-1]
    assert [s.floor for s in plan.steps if s.kind == "lift"] == [3]


def test_corridor_edges_are_merged_and_turns_come_from_coordinates() -> None:
    plan = find_route(DEMO, "entrance_main", "clinic_dermatology", step_free=True)
    corridor = next(s for s in plan.steps if "经过三楼候诊区" in s.text_zh)
    # A3_c3 -> A3_c4 -> A3_c5: two corridor edges, one instruction, then a left turn towards the room
    assert corridor.nodes == ["A3_c3", "A3_c4", "A3_c5"]
    assert corridor.text_zh == "沿走廊直行约30米，经过三楼候诊区，左转。"
    assert corridor.text_en.endswith("passing the floor 3 waiting area, then turn left.")
    first = plan.steps[1]  # walking north from the main door, then the lift is up-left
    assert first.text_zh == "沿走廊直行约15米，经过中庭喷泉，左转。"
    plain = find_route(DEMO, "entrance_main", "clinic_dermatology")
    assert plain.steps[1].text_zh.endswith("右转。")  # the east stairs are to the right


def test_crossing_the_skybridge_is_its_own_step() -> None:
    plan = find_route(DEMO, "clinic_cardiology", "ultrasound")  # both on floor 2: the skybridge
    cross = [s for s in plan.steps if s.kind == "cross"]
    assert len(cross) == 1
    assert "二楼空中连廊" in cross[0].text_zh and "2F skybridge" in cross[0].text_en
    assert route_floors(DEMO, plan) == [("A", 2), ("B", 2)]


def test_route_floors_lists_each_floor_once_in_order() -> None:
    plan = find_route(DEMO, "entrance_main", "medical_records")
    assert route_floors(DEMO, plan) == [("A", 1), ("B", 1), ("B", 2), ("B", 3)]


# ---------------------------------------------------------------------------------- place names


@pytest.mark.parametrize(
    ("text", "node_id"),
    [
        ("皮肤科", "clinic_dermatology"),
        ("dermatology", "clinic_dermatology"),
        ("Dermatology", "clinic_dermatology"),
        ("我要去皮肤科", "clinic_dermatology"),
        ("药房", "pharmacy"),
        ("pharmacy", "pharmacy"),
        ("CT", "radiology_ct"),
        ("做CT在哪", "radiology_ct"),
        ("心内科", "clinic_cardiology"),
        ("心血管内科", "clinic_cardiology"),  # the catalogue's name
        ("Where is the ENT clinic?", "clinic_ent"),
        ("ENT (Otorhinolaryngology)", "clinic_ent"),
        ("急诊科", "emergency_room"),
        ("emergency entrance", "entrance_emergency"),
        ("main entrance", "entrance_main"),
        ("抽血", "blood_draw"),
        ("clinic_tcm", "clinic_tcm"),
        ("精神心理科", "clinic_psychiatry"),
    ],
)
def test_resolve_place_reads_zh_and_en_names(text: str, node_id: str) -> None:
    assert resolve_place(DEMO, text) == node_id


@pytest.mark.parametrize(
    "text", ["火星科", "", "   ", "entrance", "感染科", "x" * 500, "神经外科", "我要看肾内科", "Neurosurgery"]
)
def test_unknown_place_is_a_clear_error(text: str) -> None:
    with pytest.raises(NavigationError) as info:
        resolve_place(DEMO, text)
    assert info.value.code == "unknown_place"
    assert "导诊台" in info.value.zh and "information desk" in info.value.en
    assert len(info.value.zh) < 120  # a long input is cut, not echoed whole


def test_find_route_accepts_names_and_rejects_unknown_rooms() -> None:
    assert find_route(DEMO, "正门", "皮肤科").to_id == "clinic_dermatology"
    with pytest.raises(NavigationError) as info:
        find_route(DEMO, "entrance_main", "room_999")
    assert info.value.code == "unknown_place" and "room_999" in info.value.en


# --------------------------------------------------------------------------------- loading maps


@pytest.mark.parametrize("map_id", ["no-such-map", "../tools/data/maps/demo-general-hospital", "", "A B"])
def test_unknown_map(map_id: str) -> None:
    with pytest.raises(NavigationError) as info:
        load_map(map_id)
    assert info.value.code == "unknown_map"


def test_load_map_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    assert load_map("demo-general-hospital") is DEMO
    shutil.copy(FIXTURE_MAPS / "disconnected-test.yaml", tmp_path)
    first = load_map("disconnected-test", tmp_path)
    assert load_map("disconnected-test", tmp_path) is first
    path = tmp_path / "disconnected-test.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("孤岛诊室", "孤岛房间"), encoding="utf-8")
    os.utime(path, ns=(1, first.source.stat().st_mtime_ns + 10**9))
    assert load_map("disconnected-test", tmp_path).label("island_room", "zh") == "孤岛房间"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  - {a: X1_c2, b: lab}", "  - {a: X1_c2, b: lab_typo}", "unknown node 'lab_typo'"),
        ("{id: X2_c1,", "{id: X1_c1,", "duplicate node id 'X1_c1'"),
        ("  - {a: X2_c1, b: island_room}", "  - {a: X1_c1, b: island_room}", "joins different floors"),
        ("building: X, floor: 2, x: 10, y: 2", "building: X, floor: 7, x: 10, y: 2", "has no floor 7"),
        ("building: X, floor: 1, x: 0", "building: Y, floor: 1, x: 0", "unknown building 'Y'"),
        ("kind: room, building: X, floor: 2", "kind: sofa, building: X, floor: 2", "kind"),
        ("id: disconnected-test", "id: other-id", "must match the file name"),
    ],
)
def test_broken_map_files_are_refused_with_a_clear_error(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = (FIXTURE_MAPS / "disconnected-test.yaml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "disconnected-test.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(MapDataError) as info:
        load_map("disconnected-test", tmp_path)
    assert "disconnected-test.yaml" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "node_id"),
    [
        ("Where is the main entrance?", "entrance_main"),
        ("take me to A&E", "emergency_room"),
        ("I need the blood test room", "blood_draw"),
        ("我要做B超", "ultrasound"),
    ],
)
def test_resolve_place_finds_latin_names_inside_sentences(text: str, node_id: str) -> None:
    assert resolve_place(DEMO, text) == node_id


def test_every_catalogue_room_is_on_its_clinics_map_and_step_free() -> None:
    catalogue = pytest.importorskip("tools.booking.catalogue")
    checked = 0
    for clinic in catalogue.load_directory().clinics.values():
        map_id = clinic.map_id or clinic.id
        try:
            hmap = load_map(map_id)
        except NavigationError:
            continue  # a clinic without a map
        rooms = {d.room_id for d in clinic.departments} | {e.room_id for e in clinic.exams}
        assert rooms - set(hmap.nodes) == set(), clinic.id
        for room in rooms:
            assert find_route(hmap, "entrance_main", room, step_free=True).nodes[-1] == room
        checked += 1
    assert checked >= 3  # the demo hospital and both community centres


def test_route_benchmark_reports_percentiles() -> None:
    from evals.bench_navigation import bench_routes

    result = bench_routes(n=60)
    assert set(result) == {"route_p50_ms", "route_p95_ms", "route_step_free_p50_ms", "route_step_free_p95_ms"}
    assert 0 < result["route_p50_ms"] <= result["route_p95_ms"]
    assert 0 < result["route_step_free_p50_ms"] <= result["route_step_free_p95_ms"]
