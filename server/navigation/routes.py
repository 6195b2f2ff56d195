"""REST /api/navigation/...: the map's places (for pickers), a route with step-by-step directions, and
the floor plan SVG with the route drawn. Query parameters are read as plain strings and checked here,
so every bad input gets {"error": {"code", "message"}} with 404/422, never a 500.

    GET /api/navigation/maps                      {"default", "maps"}
    GET /api/navigation/maps/{map_id}             buildings and places
    GET /api/navigation/route?map_id=&from=&to=&step_free=&lang=
    GET /api/navigation/floorplan.svg?map_id=&building=&floor=&from=&to=&step_free=&lang=
from/to accept node ids or names ("皮肤科", "pharmacy"); map_id defaults to the runtime's default map.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.connection import request_lang
from server.navigation import NavigationRuntime
from tools.floorplan_svg import floorplan_svg
from tools.navigation import (
    HospitalMap,
    MapDataError,
    NavigationError,
    RoutePlan,
    find_route,
    load_map,
    route_floors,
)

router = APIRouter(prefix="/api/navigation", tags=["navigation"])

STATUS = {
    "unknown_map": 404,
    "unknown_place": 404,
    "unknown_floor": 404,
    "no_route": 422,
    "no_step_free_route": 422,
    "missing_param": 422,
    "bad_param": 422,
    "map_unavailable": 503,
}
MESSAGES = {
    "missing_param": ("缺少参数：{detail}", "Missing parameter: {detail}"),
    "bad_param": ("参数无效：{detail}", "Invalid parameter: {detail}"),
    "map_unavailable": ("地图数据有误，暂时不能导航。", "The map data is broken; navigation is unavailable."),
}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"", "0", "false", "no", "off"}


class _BadRequest(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def _runtime(request: Request) -> NavigationRuntime:
    runtime = getattr(request.app.state, "navigation", None)
    return runtime if isinstance(runtime, NavigationRuntime) else NavigationRuntime()


def _error(code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=STATUS.get(code, 422))


def _handled(request: Request, action: Any) -> Any:
    lang = request_lang(request)
    try:
        return action(lang)
    except NavigationError as exc:
        return _error(exc.code, exc.message(lang))
    except _BadRequest as exc:
        zh, en = MESSAGES[exc.code]
        return _error(exc.code, (zh if lang == "zh" else en).format(detail=exc.detail))
    except MapDataError:
        zh, en = MESSAGES["map_unavailable"]
        return _error("map_unavailable", zh if lang == "zh" else en)


def _map(request: Request) -> HospitalMap:
    runtime = _runtime(request)
    map_id = request.query_params.get("map_id") or runtime.default_map_id
    return load_map(map_id, runtime.maps_dir)


def _step_free(request: Request) -> bool:
    value = request.query_params.get("step_free", "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise _BadRequest("bad_param", f"step_free={value[:20]}")


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise _BadRequest("missing_param", name)
    if len(value) > 200:
        raise _BadRequest("bad_param", f"{name} (too long)")
    return value


def _place(hmap: HospitalMap, node_id: str, lang: str) -> dict[str, Any]:
    node = hmap.nodes[node_id]
    return {
        "id": node.id,
        "name": hmap.label(node.id, lang),
        "kind": node.kind,
        "building": node.building,
        "floor": node.floor,
        "where": hmap.where(node.building, node.floor, lang),
    }


def _summary(plan: RoutePlan, lang: str) -> str:
    metres = round(plan.metres)
    if lang == "zh":
        return f"全程约{metres}米，步行约{plan.minutes}分钟。"
    return f"About {metres} m, roughly {plan.minutes} min on foot."


@router.get("/maps", summary="Map ids and the default map")
def list_maps(request: Request) -> Any:
    runtime = _runtime(request)
    return {"default": runtime.default_map_id, "maps": runtime.map_ids()}


@router.get("/maps/{map_id}", summary="A map's buildings and places (for pickers)")
def get_map(map_id: str, request: Request) -> Any:
    def action(lang: str) -> dict[str, Any]:
        hmap = load_map(map_id, _runtime(request).maps_dir)
        places = sorted(hmap.places(), key=lambda n: (n.building, n.floor, n.kind, hmap.label(n.id, lang)))
        return {
            "map_id": hmap.id,
            "name": hmap.name.get(lang),
            "demo": hmap.demo,
            "buildings": [
                {"id": b.id, "name": b.name.get(lang), "floors": b.floors} for b in hmap.buildings.values()
            ],
            "places": [_place(hmap, n.id, lang) for n in places],
        }

    return _handled(request, action)


@router.get("/route", summary="Route with step-by-step directions")
def get_route(request: Request) -> Any:
    def action(lang: str) -> dict[str, Any]:
        hmap = _map(request)
        start, goal, step_free = _required(request, "from"), _required(request, "to"), _step_free(request)
        plan = find_route(hmap, start, goal, step_free=step_free)
        floors = []
        for building, floor in route_floors(hmap, plan):
            query = {
                "map_id": hmap.id,
                "building": building,
                "floor": floor,
                "from": plan.from_id,
                "to": plan.to_id,
                "step_free": str(step_free).lower(),
                "lang": lang,
            }
            floors.append(
                {
                    "building": building,
                    "floor": floor,
                    "where": hmap.where(building, floor, lang),
                    "svg_url": f"/api/navigation/floorplan.svg?{urlencode(query)}",
                }
            )
        return {
            "map_id": hmap.id,
            "from": _place(hmap, plan.from_id, lang),
            "to": _place(hmap, plan.to_id, lang),
            "step_free": step_free,
            "metres": plan.metres,
            "seconds": plan.seconds,
            "minutes": plan.minutes,
            "summary": _summary(plan, lang),
            "steps": [
                {
                    "kind": s.kind,
                    "text": s.text(lang),
                    "text_zh": s.text_zh,
                    "text_en": s.text_en,
                    "building": s.building,
                    "floor": s.floor,
                    "landmark": s.landmark.get(lang) if s.landmark else None,
                }
                for s in plan.steps
            ],
            "floors": floors,
            "nodes": plan.nodes,
        }

    return _handled(request, action)


@router.get("/floorplan.svg", summary="Floor plan of one floor as SVG, with the route drawn")
def get_floorplan(request: Request) -> Any:
    def action(lang: str) -> Response:
        hmap = _map(request)
        plan = None
        if request.query_params.get("from") or request.query_params.get("to"):
            start, goal = _required(request, "from"), _required(request, "to")
            plan = find_route(hmap, start, goal, step_free=_step_free(request))
        building = request.query_params.get("building", "").strip()
        floor_text = request.query_params.get("floor", "").strip()
        if plan is not None and not building:
            building = hmap.nodes[plan.from_id].building
        if plan is not None and not floor_text:
            floor_text = str(hmap.nodes[plan.from_id].floor)
        if not building:
            raise _BadRequest("missing_param", "building")
        if not floor_text:
            raise _BadRequest("missing_param", "floor")
        try:
            floor = int(floor_text)
        except ValueError:
            raise _BadRequest("bad_param", f"floor={floor_text[:20]}") from None
        svg = floorplan_svg(hmap, plan, building, floor, lang)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    return _handled(request, action)
