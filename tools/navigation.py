"""In-hospital navigation: the hospital as a graph (tools/data/maps/<map_id>.yaml), the fastest route
between two places, and step-by-step directions in zh and en.

Map file shape (coordinates in metres, one site-wide grid, x to the right and y DOWN the plan as on
screen, so the SVG floor plan needs no flip):
    buildings: [{id, name: {zh, en}, floors: [1, 2, ...]}]
    nodes:     [{id, kind, building, floor, x, y, name?: {zh, en}, aliases?: [...], department?}]
    edges:     [{a, b, kind: walk|ramp|stairs|lift|escalator, length?, rise?, name?: {zh, en}}]
    connectors: [{id, kind: lift|stairs|escalator, building, floors, x, y, link: "A{floor}_c3", name?}]
A connector is shorthand for one lift/stair/escalator node per floor ("<id>_f<floor>") joined to the
corridor node named by `link` and to each other: a lift joins every pair of floors (one wait, then
the ride), stairs and escalators join neighbouring floors (time adds up floor by floor).

Route cost is walking time in seconds, so "shortest" means fastest, not fewest metres.
"""

from __future__ import annotations

import heapq
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from tools.booking.models import LocalizedText
from tools.departments import load_catalogue
from tools.localized_error import LocalizedError

MAPS_DIR = Path(__file__).resolve().parent / "data" / "maps"

WALK_SPEED_M_S = 1.2
RAMP_SPEED_M_S = 1.0  # pushing a wheelchair or pram up a ramp is slower than walking
STAIRS_S_PER_FLOOR = 15.0
STAIRS_M_PER_FLOOR = 8.0  # walking distance of one flight, counted in the route's metres
LIFT_WAIT_AND_RIDE_S = 45.0  # waiting for the car plus doors and the first floor
LIFT_S_PER_FLOOR = 5.0
ESCALATOR_S_PER_FLOOR = 20.0  # ride plus walking round to the next flight
ESCALATOR_M_PER_FLOOR = 12.0
TURN_MIN_DEGREES = 30.0  # a smaller change of heading counts as "straight on"
LANDMARK_NEAR_M = 6.0  # a landmark this close to a walked segment is "passed"

NodeKind = Literal["room", "corridor", "lift", "stairs", "escalator", "entrance", "landmark"]
EdgeKind = Literal["walk", "ramp", "stairs", "lift", "escalator"]
VERTICAL_KINDS = {"stairs", "lift", "escalator"}
NOT_STEP_FREE = {"stairs", "escalator"}
# Kinds of node a patient may want to go to (pickers list these; corridors and landings are not places).
PLACE_KINDS = {"room", "entrance", "landmark"}
MAP_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# ------------------------------------------------------------------------------------------- errors

ERROR_TEXT: dict[str, tuple[str, str]] = {
    "unknown_map": ("找不到地图“{detail}”。", "No map called '{detail}'."),
    "unknown_place": (
        "在本院地图上找不到“{detail}”，请换个说法，或问导诊台。",
        "Could not find '{detail}' on the hospital map; try another name or ask the information desk.",
    ),
    "no_route": (
        "从{start}到{end}没有可走的路线（地图上不连通），请问导诊台。",
        "There is no route from {start} to {end} on the map (not connected); "
        "please ask the information desk.",
    ),
    "no_step_free_route": (
        "从{start}到{end}没有无台阶路线（只能走楼梯），请联系导诊台安排工作人员协助。",
        "There is no step-free route from {start} to {end} (stairs only); "
        "please ask the information desk for a staff escort.",
    ),
    "unknown_floor": ("地图上没有{detail}。", "The map has no {detail}."),
}


class NavigationError(LocalizedError):
    """A navigation failure people can read: `code` is stable, `zh`/`en` are the messages."""

    messages = ERROR_TEXT


class MapDataError(ValueError):
    """The map file itself is broken (a data bug, not bad user input)."""


# --------------------------------------------------------------------------------------- file models


class BuildingSpec(BaseModel):
    id: str
    name: LocalizedText
    floors: list[int] = Field(min_length=1)


class NodeSpec(BaseModel):
    id: str
    kind: NodeKind
    building: str
    floor: int
    x: float
    y: float
    name: LocalizedText | None = None
    aliases: list[str] = Field(default_factory=list)
    department: str | None = None  # a departments.yaml id whose names also find this node


class EdgeSpec(BaseModel):
    a: str
    b: str
    kind: EdgeKind = "walk"
    length: float | None = Field(default=None, gt=0)  # metres; default: straight line between a and b
    rise: float | None = Field(default=None, gt=0)  # floors climbed by stairs (half a floor: 0.5)
    name: LocalizedText | None = None  # e.g. 二楼空中连廊, used in the directions


class ConnectorSpec(BaseModel):
    id: str
    kind: Literal["lift", "stairs", "escalator"]
    building: str
    floors: list[int] = Field(min_length=2)
    x: float
    y: float
    link: str  # corridor node id on each floor, "{floor}" replaced by the floor number
    name: LocalizedText | None = None


class MapFile(BaseModel):
    id: str
    demo: bool = False
    name: LocalizedText
    buildings: list[BuildingSpec] = Field(min_length=1)
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default_factory=list)
    connectors: list[ConnectorSpec] = Field(default_factory=list)


# ------------------------------------------------------------------------------------- loaded graph


@dataclass(frozen=True)
class Arc:
    """One direction of an edge, with its cost."""

    to: str
    kind: EdgeKind
    metres: float
    seconds: float
    rise: float  # floors climbed (0 for level edges)
    name: LocalizedText | None = None


@dataclass
class HospitalMap:
    id: str
    name: LocalizedText
    demo: bool
    buildings: dict[str, BuildingSpec]
    nodes: dict[str, NodeSpec]
    arcs: dict[str, list[Arc]]
    source: Path
    # normalised name -> node id, for resolve_place
    # normalised name -> node id; None: a department of the catalogue this hospital does not have
    names: dict[str, str | None] = field(default_factory=dict)
    # normalised Latin name -> pattern matching it as whole words ("main entrance" in a sentence)
    latin: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def node(self, node_id: str) -> NodeSpec:
        return self.nodes[node_id]

    def label(self, node_id: str, lang: str) -> str:
        node = self.nodes[node_id]
        return node.name.get(lang) if node.name else node_id

    def where(self, building: str, floor: int, lang: str) -> str:
        """门诊楼3楼 / Outpatient Building (A), floor 3."""
        name = self.buildings[building].name.get(lang)
        return f"{name}{floor}楼" if lang == "zh" else f"{name}, floor {floor}"

    def places(self) -> list[NodeSpec]:
        return [n for n in self.nodes.values() if n.kind in PLACE_KINDS]


def _edge_cost(kind: EdgeKind, length: float, rise: float) -> tuple[float, float]:
    """(metres, seconds) of one edge."""
    if kind == "walk":
        return length, length / WALK_SPEED_M_S
    if kind == "ramp":
        return length, length / RAMP_SPEED_M_S
    if kind == "stairs":
        return max(length, STAIRS_M_PER_FLOOR * rise), STAIRS_S_PER_FLOOR * rise
    if kind == "lift":
        return 0.0, LIFT_WAIT_AND_RIDE_S + LIFT_S_PER_FLOOR * max(rise - 1, 0)
    return ESCALATOR_M_PER_FLOOR * rise, ESCALATOR_S_PER_FLOOR * rise


def _build(spec: MapFile, path: Path) -> HospitalMap:
    def fail(message: str) -> MapDataError:
        return MapDataError(f"{path.name}: {message}")

    buildings: dict[str, BuildingSpec] = {}
    for b in spec.buildings:
        if b.id in buildings:
            raise fail(f"duplicate building id {b.id!r}")
        buildings[b.id] = b

    nodes: dict[str, NodeSpec] = {}
    edges: list[EdgeSpec] = list(spec.edges)

    def add_node(node: NodeSpec) -> None:
        if node.id in nodes:
            raise fail(f"duplicate node id {node.id!r}")
        building = buildings.get(node.building)
        if building is None:
            raise fail(f"node {node.id!r}: unknown building {node.building!r}")
        if node.floor not in building.floors:
            raise fail(f"node {node.id!r}: building {node.building} has no floor {node.floor}")
        nodes[node.id] = node

    for node in spec.nodes:
        add_node(node)
    for conn in spec.connectors:
        ids = [f"{conn.id}_f{f}" for f in conn.floors]
        for floor, node_id in zip(conn.floors, ids, strict=True):
            add_node(
                NodeSpec(
                    id=node_id,
                    kind=conn.kind,
                    building=conn.building,
                    floor=floor,
                    x=conn.x,
                    y=conn.y,
                    name=conn.name,
                )
            )
            edges.append(EdgeSpec(a=node_id, b=conn.link.format(floor=floor), kind="walk"))
        if conn.kind == "lift":  # one wait, then ride to any floor
            pairs = [(ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))]
        else:
            pairs = list(zip(ids, ids[1:], strict=False))
        edges.extend(EdgeSpec(a=a, b=b, kind=conn.kind) for a, b in pairs)

    arcs: dict[str, list[Arc]] = {node_id: [] for node_id in nodes}
    for i, edge in enumerate(edges):
        for end in (edge.a, edge.b):
            if end not in nodes:
                raise fail(f"edge {i} ({edge.a} - {edge.b}) names unknown node {end!r}")
        if edge.a == edge.b:
            raise fail(f"edge {i} joins {edge.a!r} to itself")
        a, b = nodes[edge.a], nodes[edge.b]
        floors_apart = abs(a.floor - b.floor)
        if edge.kind in {"walk", "ramp"} and floors_apart:
            raise fail(f"{edge.kind} edge {edge.a} - {edge.b} joins different floors; use stairs/lift")
        if edge.kind in VERTICAL_KINDS and not floors_apart and edge.rise is None:
            raise fail(f"{edge.kind} edge {edge.a} - {edge.b} on one floor needs `rise`")
        rise = edge.rise if edge.rise is not None else float(floors_apart)
        length = edge.length if edge.length is not None else math.dist((a.x, a.y), (b.x, b.y))
        metres, seconds = _edge_cost(edge.kind, length, rise)
        arcs[edge.a].append(Arc(edge.b, edge.kind, metres, seconds, rise, edge.name))
        arcs[edge.b].append(Arc(edge.a, edge.kind, metres, seconds, rise, edge.name))

    hmap = HospitalMap(
        id=spec.id, name=spec.name, demo=spec.demo, buildings=buildings, nodes=nodes, arcs=arcs, source=path
    )
    hmap.names, hmap.latin = _name_index(hmap)
    return hmap


# ---------------------------------------------------------------------------------------- loading


def load_map(map_id: str, maps_dir: Path | None = None) -> HospitalMap:
    """The map tools/data/maps/<map_id>.yaml (or in maps_dir), validated; cached until the file changes.

    Raises NavigationError("unknown_map") for a missing map and MapDataError for a broken file."""
    if not isinstance(map_id, str) or not MAP_ID_RE.match(map_id):
        raise NavigationError.of("unknown_map", detail=str(map_id)[:64])
    path = (Path(maps_dir) if maps_dir else MAPS_DIR).resolve() / f"{map_id}.yaml"
    if not path.is_file():
        raise NavigationError.of("unknown_map", detail=map_id)
    return _load_cached(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _load_cached(path: Path, _mtime_ns: int) -> HospitalMap:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MapDataError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MapDataError(f"{path.name}: must hold a mapping")
    try:
        spec = MapFile.model_validate(raw)
    except ValidationError as exc:
        raise MapDataError(f"{path.name}: {exc}") from exc
    if spec.id != path.stem:
        raise MapDataError(f"{path.name}: id {spec.id!r} must match the file name")
    return _build(spec, path)


# --------------------------------------------------------------------------------- resolving names


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s'’\"“”.,，。!！?？:：;；、()（）-]+", "", text)


def _name_variants(name: str) -> list[str]:
    """ "感染科/肝病科" -> both halves; "ENT (Otorhinolaryngology)" -> also "ENT"."""
    parts = [name, re.sub(r"[（(].*?[)）]", "", name)]
    parts += name.split("/")
    return [p for p in (part.strip() for part in parts) if p]


def latin_words_pattern(name: str) -> re.Pattern[str]:
    """Matches a Latin name as whole words, spaces optional: "ENT" not inside "entrance"."""
    words = re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKC", name).lower())
    return re.compile(r"(?<![a-z0-9])" + r"[^a-z0-9]*".join(map(re.escape, words)) + r"(?![a-z0-9])")


def _name_index(hmap: HospitalMap) -> tuple[dict[str, str | None], dict[str, re.Pattern[str]]]:
    catalogue = load_catalogue()
    index: dict[str, str | None] = {}
    latin: dict[str, re.Pattern[str]] = {}

    def add(key: str, node_id: str | None) -> None:
        norm = _normalise(key)
        if len(norm) >= 2 and norm not in index:  # first definition wins; map authors order aliases
            index[norm] = node_id
            if norm.isascii():
                latin[norm] = latin_words_pattern(key)

    for node in hmap.nodes.values():
        if node.kind not in PLACE_KINDS:
            continue
        add(node.id, node.id)
        if node.name:
            add(node.name.zh, node.id)
            add(node.name.en, node.id)
        for alias in node.aliases:
            add(alias, node.id)
    present: set[str] = set()
    for node in hmap.nodes.values():  # department names come after the map's own names
        dept_id = node.department or (node.id[len("clinic_") :] if node.id.startswith("clinic_") else None)
        dept = catalogue.departments.get(dept_id) if dept_id else None
        if dept is None or node.kind not in PLACE_KINDS:
            continue
        present.add(dept.id)
        add(dept.id, node.id)
        for variant in [*_name_variants(dept.zh), *_name_variants(dept.en), *dept.aliases]:
            add(variant, node.id)
    # General-hospital departments this map lacks are known too, so "神经外科" is "not here" rather
    # than the 外科 (general surgery) hidden inside the name.
    for dept in catalogue.departments.values():
        if dept.hospital == "general" and dept.id not in present:
            for variant in [*_name_variants(dept.zh), *_name_variants(dept.en), *dept.aliases]:
                add(variant, None)
    return index, latin


def resolve_place(hmap: HospitalMap, text: str) -> str:
    """Node id for a node id, name or alias ("皮肤科", "药房", "pharmacy", "CT"), also inside a sentence
    ("我要去皮肤科"): the longest known name found wins. Raises NavigationError("unknown_place")."""
    raw = (text or "").strip()
    if raw in hmap.nodes:
        return raw
    norm = _normalise(raw)
    lowered = unicodedata.normalize("NFKC", raw).lower()
    best: tuple[int, str | None] | None = None
    if norm in hmap.names:
        best = (len(norm), hmap.names[norm])
    else:
        for key, node_id in hmap.names.items():
            if key not in norm:
                continue
            if key in hmap.latin and not hmap.latin[key].search(lowered):
                continue  # Latin names must stand alone: "ent" must not match inside "entrance"
            if best is None or len(key) > best[0]:
                best = (len(key), node_id)
    if best is None or best[1] is None:
        raise NavigationError.of("unknown_place", detail=raw[:40] or "?")
    return best[1]


# -------------------------------------------------------------------------------------- the route


class RouteEdge(BaseModel):
    a: str
    b: str
    kind: EdgeKind
    metres: float
    seconds: float


class RouteStep(BaseModel):
    kind: Literal["start", "walk", "cross", "lift", "stairs", "escalator", "arrive"]
    text_zh: str
    text_en: str
    building: str
    floor: int
    landmark: LocalizedText | None = None
    metres: float = 0.0
    nodes: list[str] = Field(default_factory=list)

    def text(self, lang: str) -> str:
        return self.text_zh if lang == "zh" else self.text_en


class RoutePlan(BaseModel):
    map_id: str
    from_id: str
    to_id: str
    step_free: bool
    nodes: list[str]
    edges: list[RouteEdge]
    metres: float
    seconds: float
    steps: list[RouteStep]

    @property
    def minutes(self) -> int:
        """Whole minutes, rounded up, at least 1 (a plan of 0 minutes reads as a mistake)."""
        return max(1, math.ceil(self.seconds / 60))


def _floors_of(hmap: HospitalMap, nodes: list[str]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for node_id in nodes:
        node = hmap.nodes[node_id]
        key = (node.building, node.floor)
        if key not in seen:
            seen.append(key)
    return seen


def route_floors(hmap: HospitalMap, plan: RoutePlan) -> list[tuple[str, int]]:
    """(building, floor) in the order the route visits them, each once: the floor plans to show."""
    return _floors_of(hmap, plan.nodes)


def _dijkstra(
    hmap: HospitalMap, start: str, goal: str, step_free: bool
) -> list[tuple[str, Arc | None]] | None:
    """[(node, arc that reached it)] from start to goal by least seconds, or None if unreachable."""
    best: dict[str, float] = {start: 0.0}
    came: dict[str, tuple[str, Arc]] = {}
    heap: list[tuple[float, str]] = [(0.0, start)]
    done: set[str] = set()
    while heap:
        cost, node = heapq.heappop(heap)
        if node in done:
            continue
        if node == goal:
            break
        done.add(node)
        for arc in hmap.arcs[node]:
            if step_free and arc.kind in NOT_STEP_FREE:
                continue
            new = cost + arc.seconds
            if new < best.get(arc.to, math.inf):
                best[arc.to] = new
                came[arc.to] = (node, arc)
                heapq.heappush(heap, (new, arc.to))
    if goal not in best:
        return None
    path: list[tuple[str, Arc | None]] = []
    node = goal
    while node != start:
        prev, arc = came[node]
        path.append((node, arc))
        node = prev
    path.append((start, None))
    path.reverse()
    return path


def find_route(hmap: HospitalMap, from_id: str, to_id: str, *, step_free: bool = False) -> RoutePlan:
    """The fastest route from one place to another (ids, or names resolve_place understands).

    step_free leaves out stairs and escalators (wheelchairs, prams). Raises NavigationError:
    unknown_place, no_route (not connected at all), no_step_free_route (only with stairs)."""
    start = from_id if from_id in hmap.nodes else resolve_place(hmap, from_id)
    goal = to_id if to_id in hmap.nodes else resolve_place(hmap, to_id)
    path = _dijkstra(hmap, start, goal, step_free)
    if path is None:
        names = {
            "start": hmap.label(start, "zh"),
            "end": hmap.label(goal, "zh"),
            "start_en": hmap.label(start, "en"),
            "end_en": hmap.label(goal, "en"),
        }
        if step_free and _dijkstra(hmap, start, goal, False) is not None:
            raise NavigationError.of("no_step_free_route", **names)
        raise NavigationError.of("no_route", **names)
    edges = [
        RouteEdge(a=prev, b=node, kind=arc.kind, metres=round(arc.metres, 1), seconds=round(arc.seconds, 1))
        for (prev, _), (node, arc) in zip(path, path[1:], strict=False)
        if arc is not None
    ]
    return RoutePlan(
        map_id=hmap.id,
        from_id=start,
        to_id=goal,
        step_free=step_free,
        nodes=[node for node, _ in path],
        edges=edges,
        metres=round(sum(arc.metres for _, arc in path if arc), 1),
        seconds=round(sum(arc.seconds for _, arc in path if arc), 1),
        steps=_directions(hmap, path),
    )


# ---------------------------------------------------------------------------------- the directions


def _about_metres(metres: float) -> int:
    if metres < 10:
        return max(1, round(metres))
    return int(5 * round(metres / 5))


def _turn(hmap: HospitalMap, a: str, b: str, c: str) -> str | None:
    """ "left"/"right"/"back" at b when walking a -> b -> c, None when (nearly) straight on."""
    na, nb, nc = hmap.nodes[a], hmap.nodes[b], hmap.nodes[c]
    v1 = (nb.x - na.x, nb.y - na.y)
    v2 = (nc.x - nb.x, nc.y - nb.y)
    if math.hypot(*v1) < 0.01 or math.hypot(*v2) < 0.01:
        return None
    angle = math.degrees(math.atan2(v1[0] * v2[1] - v1[1] * v2[0], v1[0] * v2[0] + v1[1] * v2[1]))
    if abs(angle) < TURN_MIN_DEGREES:
        return None
    if abs(angle) > 150:
        return "back"
    # y runs down the plan, so a positive cross product is a clockwise (right) turn.
    return "right" if angle > 0 else "left"


TURN_TEXT = {"left": ("左转", "turn left"), "right": ("右转", "turn right"), "back": ("掉头", "turn back")}
CONNECTOR_NAME = {
    "lift": ("电梯", "the lift"),
    "stairs": ("楼梯", "the stairs"),
    "escalator": ("扶梯", "the escalator"),
}


def _landmarks_along(hmap: HospitalMap, nodes: list[str], exclude: set[str]) -> list[str]:
    """Landmark nodes on or beside the walked segments (within LANDMARK_NEAR_M), in walking order."""
    first = hmap.nodes[nodes[0]]
    found: list[tuple[float, str]] = []
    walked = 0.0
    for a_id, b_id in zip(nodes, nodes[1:], strict=False):
        a, b = hmap.nodes[a_id], hmap.nodes[b_id]
        seg = math.dist((a.x, a.y), (b.x, b.y))
        for lm in hmap.nodes.values():
            if lm.kind != "landmark" or lm.id in exclude or lm.building != first.building:
                continue
            if lm.floor != first.floor or any(lm.id == f for _, f in found):
                continue
            dist, t = _point_to_segment(lm.x, lm.y, a.x, a.y, b.x, b.y)
            if dist <= LANDMARK_NEAR_M:
                found.append((walked + t * seg, lm.id))
        walked += seg
    return [lm for _, lm in sorted(found)]


def _point_to_segment(
    px: float, py: float, ax: float, ay: float, bx: float, by: float
) -> tuple[float, float]:
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.dist((px, py), (ax + t * dx, ay + t * dy)), t


def _directions(hmap: HospitalMap, path: list[tuple[str, Arc | None]]) -> list[RouteStep]:
    start, goal = path[0][0], path[-1][0]
    s_node = hmap.nodes[start]
    where_zh = hmap.where(s_node.building, s_node.floor, "zh")
    where_en = hmap.where(s_node.building, s_node.floor, "en")
    steps = [
        RouteStep(
            kind="start",
            text_zh=f"从{hmap.label(start, 'zh')}（{where_zh}）出发。",
            text_en=f"Start at {hmap.label(start, 'en')}, {where_en}.",
            building=s_node.building,
            floor=s_node.floor,
            nodes=[start],
        )
    ]
    if start == goal:
        steps[0].text_zh += "你已经在这里了。"
        steps[0].text_en += " You are already there."
        return steps
    i = 1
    mentioned: set[str] = {start, goal}
    while i < len(path):
        node_id, arc = path[i]
        assert arc is not None
        prev_id = path[i - 1][0]
        if arc.kind in VERTICAL_KINDS:
            j = i  # merge a run of the same kind of connector (stairs floor by floor)
            while j + 1 < len(path) and getattr(path[j + 1][1], "kind", None) == arc.kind:
                j += 1
            run = path[i - 1 : j + 1]
            run_metres = sum(a.metres for _, a in run if a is not None)
            steps.append(_vertical_step(hmap, [p for p, _ in run], arc.kind, run_metres))
            i = j + 1
            continue
        a, b = hmap.nodes[prev_id], hmap.nodes[node_id]
        if a.building != b.building:  # a link corridor or skybridge between buildings
            steps.append(_cross_step(hmap, prev_id, node_id, arc))
            i += 1
            continue
        # A straight walking segment: extend while level edges on this floor keep the heading.
        seg = [prev_id, node_id]
        metres = arc.metres
        kinds = {arc.kind}
        j = i
        turn: str | None = None
        while j + 1 < len(path):
            nxt_id, nxt_arc = path[j + 1]
            if nxt_arc is None or nxt_arc.kind not in {"walk", "ramp"}:
                break
            if hmap.nodes[nxt_id].building != b.building:
                break
            turn = _turn(hmap, seg[-2], seg[-1], nxt_id)
            if turn is not None:
                break
            seg.append(nxt_id)
            metres += nxt_arc.metres
            kinds.add(nxt_arc.kind)
            j += 1
        end_id = seg[-1]
        at_end = end_id == goal
        next_arc = path[j + 1][1] if j + 1 < len(path) else None
        landmarks = _landmarks_along(hmap, seg, mentioned)
        mentioned.update(landmarks)
        steps.append(_walk_step(hmap, seg, metres, kinds, landmarks, turn, at_end, next_arc))
        i = j + 1
    return steps


def _walk_step(
    hmap: HospitalMap,
    seg: list[str],
    metres: float,
    kinds: set[str],
    landmarks: list[str],
    turn: str | None,
    at_end: bool,
    next_arc: Arc | None,
) -> RouteStep:
    end = hmap.nodes[seg[-1]]
    m = _about_metres(metres)
    along_corridor = any(hmap.nodes[n].kind == "corridor" for n in seg[1:-1]) or m >= 15
    zh = f"沿走廊直行约{m}米" if along_corridor else f"直走约{m}米"
    en = f"Walk straight along the corridor for about {m} m" if along_corridor else f"Walk about {m} m"
    if "ramp" in kinds:
        zh += "（走坡道）"
        en += " (via the ramp)"
    for lm in landmarks[:2]:
        zh += f"，经过{hmap.label(lm, 'zh')}"
        en += f", passing {hmap.label(lm, 'en')}"
    kind: Literal["walk", "arrive"] = "walk"
    if at_end:
        kind = "arrive"
        where_zh, where_en = (
            hmap.where(end.building, end.floor, "zh"),
            hmap.where(end.building, end.floor, "en"),
        )
        zh += f"，到达{hmap.label(end.id, 'zh')}（{where_zh}）。"
        en += f", and you arrive at {hmap.label(end.id, 'en')}, {where_en}."
    elif turn is not None:
        zh += f"，{TURN_TEXT[turn][0]}。"
        en += f", then {TURN_TEXT[turn][1]}."
    elif next_arc is not None and next_arc.kind in VERTICAL_KINDS:
        zh += f"，到{CONNECTOR_NAME[next_arc.kind][0]}口。"
        en += f"{',' if landmarks else ''} to {CONNECTOR_NAME[next_arc.kind][1]}."
    elif next_arc is not None and next_arc.name is not None:  # the way into the next building
        zh += f"，到{next_arc.name.zh}。"
        en += f"{',' if landmarks else ''} to {next_arc.name.en}."
    else:
        zh += "。"
        en += "."
    first_lm = hmap.nodes[landmarks[0]].name if landmarks else None
    return RouteStep(
        kind=kind,
        text_zh=zh,
        text_en=en,
        building=end.building,
        floor=end.floor,
        landmark=first_lm,
        metres=round(metres, 1),
        nodes=seg,
    )


def _cross_step(hmap: HospitalMap, a_id: str, b_id: str, arc: Arc) -> RouteStep:
    b = hmap.nodes[b_id]
    m = _about_metres(arc.metres)
    name_zh = arc.name.zh if arc.name else "连廊"
    name_en = arc.name.en if arc.name else "the link corridor"
    building = hmap.buildings[b.building].name
    return RouteStep(
        kind="cross",
        text_zh=f"经{name_zh}走约{m}米，进入{building.zh}（{b.floor}楼）。",
        text_en=f"Cross {name_en} (about {m} m) into the {building.en}, floor {b.floor}.",
        building=b.building,
        floor=b.floor,
        metres=round(arc.metres, 1),
        nodes=[a_id, b_id],
    )


def _vertical_step(hmap: HospitalMap, nodes: list[str], kind: str, metres: float) -> RouteStep:
    b_id = nodes[-1]
    a, b = hmap.nodes[nodes[0]], hmap.nodes[b_id]
    up = b.floor > a.floor
    if a.floor == b.floor:  # a few steps within one floor (a mezzanine)
        zh, en = f"走台阶到{hmap.label(b_id, 'zh')}。", f"Take the steps to {hmap.label(b_id, 'en')}."
        if b.name is None:
            zh, en = "走台阶（有几级楼梯）。", "Take the steps."
    elif kind == "lift":
        zh, en = f"乘电梯到{b.floor}楼。", f"Take the lift to floor {b.floor}."
    elif kind == "stairs":
        zh = f"走楼梯{'上' if up else '下'}到{b.floor}楼。"
        en = f"Take the stairs {'up' if up else 'down'} to floor {b.floor}."
    else:
        zh = f"乘自动扶梯{'上' if up else '下'}到{b.floor}楼。"
        en = f"Take the escalator {'up' if up else 'down'} to floor {b.floor}."
    return RouteStep(
        kind=kind,  # type: ignore[arg-type]
        text_zh=zh,
        text_en=en,
        building=b.building,
        floor=b.floor,
        metres=round(metres, 1),
        nodes=nodes,
    )


def floorplan_svg(
    hmap: HospitalMap, plan: RoutePlan | None, building: str, floor: int, lang: str = "zh"
) -> str:
    """The floor plan SVG (tools/floorplan_svg.py), re-exported here as the issue contract names it."""
    from tools.floorplan_svg import floorplan_svg as draw  # late: that module imports this one

    return draw(hmap, plan, building, floor, lang)
