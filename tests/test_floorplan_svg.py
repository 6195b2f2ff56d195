"""Floor plan SVG (tools/floorplan_svg.py): the route is drawn on the floors it crosses, and only there."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tools.floorplan_svg import SCALE, floorplan_svg
from tools.navigation import NavigationError, find_route, load_map

SVG_NS = "{http://www.w3.org/2000/svg}"
DEMO = load_map("demo-general-hospital")
PLAN = find_route(DEMO, "entrance_main", "clinic_dermatology", step_free=True)  # A1 -> lift -> A3


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the output is well-formed XML


def _routes(root: ET.Element) -> list[ET.Element]:
    return [el for el in root.iter(f"{SVG_NS}polyline") if el.get("class") == "route"]


def _markers(root: ET.Element) -> set[str]:
    return {
        el.get("class", "") for el in root.iter(f"{SVG_NS}circle") if el.get("class", "").startswith("route")
    }


def _points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in polyline.get("points", "").split()]  # type: ignore[misc]


def test_route_is_drawn_on_the_start_and_end_floors_only() -> None:
    drawn = {}
    for building, spec in DEMO.buildings.items():
        for floor in spec.floors:
            drawn[(building, floor)] = len(_routes(_parse(floorplan_svg(DEMO, PLAN, building, floor, "zh"))))
    assert {key for key, count in drawn.items() if count} == {("A", 1), ("A", 3)}


def test_start_floor_has_the_start_marker_and_end_floor_the_end_marker() -> None:
    first = _parse(floorplan_svg(DEMO, PLAN, "A", 1, "zh"))
    last = _parse(floorplan_svg(DEMO, PLAN, "A", 3, "zh"))
    assert _markers(first) == {"route-start", "route-exit"}  # leaves floor 1 by the lift
    assert _markers(last) == {"route-enter", "route-end"}
    assert first.get("data-floor") == "1" and last.get("data-building") == "A"


def test_polyline_follows_the_route_nodes_on_that_floor() -> None:
    root = _parse(floorplan_svg(DEMO, PLAN, "A", 3, "en"))
    (line,) = _routes(root)
    on_floor = [n for n in PLAN.nodes if DEMO.nodes[n].building == "A" and DEMO.nodes[n].floor == 3]
    points = _points(line)
    assert len(points) == len(on_floor)
    # consecutive points are the metre distances of the nodes, scaled
    for (x1, y1), (x2, y2), a, b in zip(points, points[1:], on_floor, on_floor[1:], strict=False):
        na, nb = DEMO.nodes[a], DEMO.nodes[b]
        assert x2 - x1 == pytest.approx((nb.x - na.x) * SCALE, abs=0.2)
        assert y2 - y1 == pytest.approx((nb.y - na.y) * SCALE, abs=0.2)


def test_labels_follow_the_language_and_rooms_are_boxes() -> None:
    zh = floorplan_svg(DEMO, None, "A", 3, "zh")
    en = floorplan_svg(DEMO, None, "A", 3, "en")
    assert "皮肤科诊室" in zh and "门诊楼 3楼" in zh
    assert "Dermatology clinic" in en and "皮肤科" not in en
    root = _parse(en)
    room = next(g for g in root.iter(f"{SVG_NS}g") if g.get("data-id") == "clinic_dermatology")
    assert room.get("class") == "room" and room.find(f"{SVG_NS}rect") is not None
    landmark = next(g for g in root.iter(f"{SVG_NS}g") if g.get("data-id") == "a3_waiting_area")
    assert landmark.find(f"{SVG_NS}circle") is not None
    assert not _routes(root) and not _markers(root)  # no plan, no route


def test_labels_are_escaped() -> None:
    hmap = load_map("disconnected-test", Path(__file__).parent / "fixtures" / "maps")
    svg = floorplan_svg(hmap, find_route(hmap, "door", "lab"), "X", 1, "en")
    assert "Lab &lt;A&amp;B&gt;" in svg and "<A&B>" not in svg
    root = _parse(svg)
    assert len(_routes(root)) == 1 and _markers(root) == {"route-start", "route-end"}
    assert not _routes(_parse(floorplan_svg(hmap, None, "X", 2, "zh")))


@pytest.mark.parametrize(("building", "floor"), [("A", 9), ("Z", 1), ("E", 2)])
def test_unknown_floor_is_an_error(building: str, floor: int) -> None:
    with pytest.raises(NavigationError) as info:
        floorplan_svg(DEMO, None, building, floor, "zh")
    assert info.value.code == "unknown_floor"


def test_navigation_module_reexports_the_floor_plan() -> None:
    from tools import navigation

    assert navigation.floorplan_svg(DEMO, PLAN, "A", 3, "zh") == floorplan_svg(DEMO, PLAN, "A", 3, "zh")
