"""REST /api/tiered/...: areas (villages, towns, subdistricts), the nearest community/township centres
with the family doctor teams covering the area, the next mobile clinic visits, and the primary-care
options for a triage care setting. Errors: {"error": {"code", "message"}} with 404/422, never a 500.

    GET /api/tiered/areas?lang=
    GET /api/tiered/nearest?area=&kind=&lang=      kind: primary|chc|township|village_clinic|hospital
    GET /api/tiered/mobile-clinics/next?area=&count=&lang=    ("下一次巡回医疗车什么时候到岭下村？")
    GET /api/tiered/primary-care?care_setting=&area=&lang=    care_setting from the triage result
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.connection import request_lang
from server.tiered import TieredRuntime
from tools.tiered_care import (
    Area,
    FamilyDoctorTeam,
    MobileVisit,
    ServiceOption,
    TieredCareData,
    TieredCareError,
    load_tiered_care,
    nearest_services,
    primary_care_options,
    resolve_area,
    upcoming_mobile_visits,
)

router = APIRouter(prefix="/api/tiered", tags=["tiered care"])

STATUS = {
    "unknown_area": 404,
    "no_mobile_clinic": 404,
    "unknown_kind": 422,
    "unknown_care_setting": 422,
    "missing_param": 422,
    "bad_param": 422,
}
MESSAGES = {
    "missing_param": ("缺少参数：{detail}", "Missing parameter: {detail}"),
    "bad_param": ("参数无效：{detail}", "Invalid parameter: {detail}"),
    "data_unavailable": (
        "基层医疗数据有误，暂时不能查询。",
        "The primary care data is broken; please try later.",
    ),
}


def _runtime(request: Request) -> TieredRuntime:
    runtime = getattr(request.app.state, "tiered", None)
    return runtime if isinstance(runtime, TieredRuntime) else TieredRuntime()


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise _missing(name)
    if len(value) > 200:
        raise _bad(f"{name} (too long)")
    return value


def _missing(name: str) -> TieredCareError:
    zh, en = MESSAGES["missing_param"]
    return TieredCareError("missing_param", zh.format(detail=name), en.format(detail=name))


def _bad(detail: str) -> TieredCareError:
    zh, en = MESSAGES["bad_param"]
    return TieredCareError("bad_param", zh.format(detail=detail), en.format(detail=detail))


def _handled(request: Request, action: Any) -> Any:
    lang = request_lang(request)
    try:
        return action(lang, load_tiered_care(_runtime(request).data_path))
    except TieredCareError as exc:
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message(lang)}}, status_code=STATUS.get(exc.code, 422)
        )
    except (ValueError, OSError):  # the data file itself is broken or missing: a server problem
        zh, en = MESSAGES["data_unavailable"]
        message = zh if lang == "zh" else en
        return JSONResponse({"error": {"code": "data_unavailable", "message": message}}, status_code=503)


def _area(area: Area, lang: str) -> dict[str, Any]:
    return {"id": area.id, "kind": area.kind, "name": area.name.get(lang), "parent": area.parent}


def _team(team: FamilyDoctorTeam, lang: str) -> dict[str, Any]:
    return {"id": team.id, "service_id": team.service, "name": team.name.get(lang), "phone": team.phone}


def _service(option: ServiceOption, lang: str) -> dict[str, Any]:
    return {
        "id": option.service_id,
        "kind": option.kind,
        "clinic_id": option.clinic_id,
        "name": option.name.get(lang),
        "distance_km": option.distance_km,
        "address": option.address.get(lang),
        "phone": option.phone,
        "hours": option.hours.get(lang),
        "offers": option.offers.get(lang),
        "family_doctor_teams": [_team(t, lang) for t in option.family_doctor_teams],
    }


def _visit(visit: MobileVisit, lang: str) -> dict[str, Any]:
    return {
        "route_id": visit.route_id,
        "route_name": visit.route_name.get(lang),
        "team": visit.team.get(lang),
        "team_phone": visit.team_phone,
        "area": {"id": visit.area_id, "name": visit.area_name.get(lang)},
        "place": visit.place.get(lang),
        "start": visit.start.isoformat(),
        "end": visit.end.isoformat(),
        "in_progress": visit.in_progress,
        "distance_km": visit.distance_km,
        "offers": visit.offers.get(lang),
        "text": visit.text(lang),
    }


@router.get("/areas", summary="Villages, towns and subdistricts we know")
def get_areas(request: Request) -> Any:
    def action(lang: str, data: TieredCareData) -> dict[str, Any]:
        return {"demo": data.demo, "areas": [_area(a, lang) for a in data.areas]}

    return _handled(request, action)


@router.get("/nearest", summary="Nearest centres and family doctor teams for an area")
def get_nearest(request: Request) -> Any:
    def action(lang: str, data: TieredCareData) -> dict[str, Any]:
        area = resolve_area(_param(request, "area"), data)
        kind = request.query_params.get("kind") or None
        limit_text = request.query_params.get("limit", "5")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 20:
            raise _bad(f"limit={limit_text[:10]}")
        services = nearest_services(area, kind, limit=int(limit_text), data=data)
        return {
            "demo": data.demo,
            "area": _area(area, lang),
            "services": [_service(s, lang) for s in services],
        }

    return _handled(request, action)


@router.get("/mobile-clinics/next", summary="The next mobile clinic visits for an area")
def get_next_mobile_clinic(request: Request) -> Any:
    def action(lang: str, data: TieredCareData) -> dict[str, Any]:
        area = resolve_area(_param(request, "area"), data)
        count_text = request.query_params.get("count", "3")
        if not count_text.isdigit() or not 1 <= int(count_text) <= 10:
            raise _bad(f"count={count_text[:10]}")
        visits = upcoming_mobile_visits(area, _runtime(request).clock(), count=int(count_text), data=data)
        items = [_visit(v, lang) for v in visits]
        return {
            "demo": data.demo,
            "area": _area(area, lang),
            "next": items[0] if items else None,
            "visits": items,
        }

    return _handled(request, action)


@router.get("/primary-care", summary="Primary-care options for a triage care setting")
def get_primary_care(request: Request) -> Any:
    def action(lang: str, data: TieredCareData) -> dict[str, Any]:
        setting = _param(request, "care_setting")
        options = primary_care_options(setting, _param(request, "area"), data)
        return {
            "demo": data.demo,
            "care_setting": options.care_setting.value,
            "area": _area(options.area, lang),
            "note": options.note.get(lang),
            "services": [_service(s, lang) for s in options.services],
            "family_doctor_teams": [_team(t, lang) for t in options.family_doctor_teams],
            "citations": [c.model_dump() for c in options.citations],
        }

    return _handled(request, action)
