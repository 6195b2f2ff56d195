"""A simple floor plan of one floor of one building as an SVG string, with the route drawn on it.

Rooms are labelled boxes, landmarks circles, lifts/stairs/escalators small marked squares, corridors
grey lines. The route's part on this floor is a thick polyline (class "route") with a start marker
where the route begins or arrives on this floor and an end marker where it ends or leaves it.
Pure string output; every label is XML-escaped."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from tools.navigation import HospitalMap, NavigationError, RoutePlan

SCALE = 8.0  # pixels per metre
MARGIN_M = 6.0
ROOM_W_M, ROOM_H_M = 9.0, 5.0
CONNECTOR_SYMBOL = {"lift": ("梯", "L"), "stairs": ("楼", "S"), "escalator": ("扶", "E")}
ROUTE_COLOUR = "#d9480f"


def _label(text: str, lang: str) -> str:
    """Short enough for a 9 m box; the full name is in the group's <title> (hover, screen readers)."""
    limit = 10 if lang == "zh" else 20
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _route_runs(hmap: HospitalMap, plan: RoutePlan, building: str, floor: int) -> list[list[str]]:
    """Maximal runs of consecutive route nodes on this floor (a run breaks where the route leaves it)."""
    runs: list[list[str]] = []
    current: list[str] = []
    for node_id in plan.nodes:
        node = hmap.nodes[node_id]
        if node.building == building and node.floor == floor:
            current.append(node_id)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def floorplan_svg(
    hmap: HospitalMap, plan: RoutePlan | None, building: str, floor: int, lang: str = "zh"
) -> str:
    """SVG of `building` floor `floor`; raises NavigationError("unknown_floor") if the map has none."""
    spec = hmap.buildings.get(building)
    if spec is None or floor not in spec.floors:
        raise NavigationError.of("unknown_floor", detail=f"{building} {floor}F")
    nodes = [n for n in hmap.nodes.values() if n.building == building and n.floor == floor]
    min_x = min(n.x for n in nodes) - MARGIN_M
    min_y = min(n.y for n in nodes) - MARGIN_M
    width = (max(n.x for n in nodes) + MARGIN_M - min_x) * SCALE
    height = (max(n.y for n in nodes) + MARGIN_M - min_y) * SCALE + 28

    def px(x: float, y: float) -> tuple[float, float]:
        return round((x - min_x) * SCALE, 1), round((y - min_y) * SCALE + 28, 1)

    title = f"{spec.name.get(lang)} {floor}{'楼' if lang == 'zh' else 'F'}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label={quoteattr(title)} '
        f'data-building={quoteattr(building)} data-floor="{floor}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#fbfbf8" stroke="#999"/>',
        f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    on_floor = {n.id for n in nodes}
    drawn: set[tuple[str, str]] = set()
    out.append('<g class="corridors" stroke="#c8c8c8" stroke-width="6" stroke-linecap="round">')
    for node in nodes:
        for arc in hmap.arcs[node.id]:
            key = tuple(sorted((node.id, arc.to)))
            if arc.to not in on_floor or key in drawn:
                continue
            drawn.add(key)  # type: ignore[arg-type]
            (x1, y1), (x2, y2) = px(node.x, node.y), px(hmap.nodes[arc.to].x, hmap.nodes[arc.to].y)
            # ramps and steps within the floor are dashed: worth noticing with a wheelchair
            dash = ' stroke-dasharray="4 3"' if arc.kind != "walk" else ""
            out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"{dash}/>')
    out.append("</g>")

    runs = _route_runs(hmap, plan, building, floor) if plan is not None else []
    # The route goes under the room boxes (so labels stay readable) and the markers on top of everything.
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{a},{b}" for a, b in (px(hmap.nodes[n].x, hmap.nodes[n].y) for n in run))
            out.append(
                f'<polyline class="route" points="{points}" fill="none" stroke="{ROUTE_COLOUR}" '
                'stroke-width="6" stroke-linejoin="round" stroke-linecap="round" opacity="0.9"/>'
            )

    out.append('<g class="places">')
    for node in nodes:
        x, y = px(node.x, node.y)
        full = escape(hmap.label(node.id, lang)) if node.name else ""
        name = escape(_label(hmap.label(node.id, lang), lang)) if node.name else ""
        tip = f"<title>{full}</title>" if full else ""
        if node.kind in {"room", "entrance"}:
            w, h = ROOM_W_M * SCALE, ROOM_H_M * SCALE
            fill = "#e7f0fb" if node.kind == "room" else "#e6f6e6"
            out.append(
                f'<g class="{node.kind}" data-id={quoteattr(node.id)}>{tip}'
                f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" '
                f'fill="{fill}" stroke="#5b7fa6"/>'
                f'<text x="{x}" y="{y + 4}" text-anchor="middle">{name}</text></g>'
            )
        elif node.kind == "landmark":
            out.append(
                f'<g class="landmark" data-id={quoteattr(node.id)}>{tip}'
                f'<circle cx="{x}" cy="{y}" r="7" fill="#fff3bf" stroke="#b08900"/>'
                f'<text x="{x}" y="{y + 20}" text-anchor="middle" font-size="10">{name}</text></g>'
            )
        elif node.kind in CONNECTOR_SYMBOL:
            symbol = CONNECTOR_SYMBOL[node.kind][0 if lang == "zh" else 1]
            out.append(
                f'<g class="{node.kind}" data-id={quoteattr(node.id)}>'
                f'<rect x="{x - 9}" y="{y - 9}" width="18" height="18" fill="#eee" stroke="#555"/>'
                f'<text x="{x}" y="{y + 4}" text-anchor="middle" font-size="10">{escape(symbol)}</text></g>'
            )
    out.append("</g>")

    for run in runs:
        assert plan is not None
        first, last = run[0], run[-1]
        sx, sy = px(hmap.nodes[first].x, hmap.nodes[first].y)
        ex, ey = px(hmap.nodes[last].x, hmap.nodes[last].y)
        start_kind = "route-start" if first == plan.from_id else "route-enter"
        end_kind = "route-end" if last == plan.to_id else "route-exit"
        # green/red: where the whole route starts/ends; blue: where it comes onto or leaves this floor
        start_fill = "#2b8a3e" if start_kind == "route-start" else "#1971c2"
        end_fill = "#c92a2a" if end_kind == "route-end" else "#1971c2"
        for kind, cx, cy, fill in ((start_kind, sx, sy, start_fill), (end_kind, ex, ey, end_fill)):
            out.append(f'<circle class="{kind}" cx="{cx}" cy="{cy}" r="6" fill="{fill}" stroke="#fff"/>')
    out.append("</svg>")
    return "\n".join(out)
