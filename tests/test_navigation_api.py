"""REST /api/navigation/... and /api/tiered/... on a small FastAPI app with just these routers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.settings import Settings
from server.navigation import NavigationRuntime
from server.navigation.routes import router as navigation_router
from server.tiered import TieredRuntime
from server.tiered.routes import router as tiered_router

FIXTURE_MAPS = Path(__file__).parent / "fixtures" / "maps"
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def make_app(settings: Settings) -> FastAPI:
    navigation = NavigationRuntime(settings, None)
    tiered = TieredRuntime(settings, None)
    tiered.clock = lambda: TUESDAY_NOON

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await navigation.start()
        await tiered.start()
        yield
        await tiered.stop()
        await navigation.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.navigation = navigation
    app.state.tiered = tiered
    app.include_router(navigation_router)
    app.include_router(tiered_router)
    return app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("nav"), llm_backend="none")
    with TestClient(make_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _error(response, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return str(body["error"]["message"])


# ------------------------------------------------------------------------------------ navigation


def test_map_places_for_pickers(client: TestClient) -> None:
    body = client.get("/api/navigation/maps/demo-general-hospital").json()
    assert body["map_id"] == "demo-general-hospital" and body["demo"] is True
    assert [b["id"] for b in body["buildings"]] == ["A", "B", "E"]
    places = {p["id"]: p for p in body["places"]}
    assert places["clinic_dermatology"]["name"] == "皮肤科诊室"
    assert places["clinic_dermatology"]["where"] == "门诊楼3楼"
    assert not any(p["kind"] in {"corridor", "lift", "stairs"} for p in body["places"])
    en = client.get("/api/navigation/maps/demo-general-hospital?lang=en").json()
    assert {p["id"]: p["name"] for p in en["places"]}["pharmacy"] == "Outpatient pharmacy"


def test_map_list_names_the_default(client: TestClient) -> None:
    body = client.get("/api/navigation/maps").json()
    assert body["default"] == "demo-general-hospital" and "demo-general-hospital" in body["maps"]


def test_route_by_names_in_english(client: TestClient) -> None:
    response = client.get(
        "/api/navigation/route",
        params={"from": "正门", "to": "dermatology", "step_free": "true", "lang": "en"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"]["id"] == "entrance_main" and body["to"]["id"] == "clinic_dermatology"
    assert body["step_free"] is True and body["minutes"] == 2 and 70 < body["metres"] < 80
    texts = [s["text"] for s in body["steps"]]
    assert "Take the lift to floor 3." in texts
    assert any("passing the atrium fountain" in t for t in texts)
    assert body["steps"][1]["landmark"] == "the atrium fountain"
    assert body["steps"][0]["text_zh"].startswith("从门诊楼正门")
    assert body["summary"].startswith("About 73 m")
    assert [(f["building"], f["floor"]) for f in body["floors"]] == [("A", 1), ("A", 3)]


def test_route_floorplan_links_draw_the_route(client: TestClient) -> None:
    body = client.get("/api/navigation/route?from=entrance_main&to=clinic_dermatology&step_free=1").json()
    for floor in body["floors"]:
        svg = client.get(floor["svg_url"])
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(svg.text)
        lines = [el for el in root.iter("{http://www.w3.org/2000/svg}polyline") if el.get("class") == "route"]
        assert len(lines) == 1
    other = client.get(body["floors"][0]["svg_url"].replace("floor=1", "floor=2"))
    assert other.status_code == 200 and 'class="route"' not in other.text


def test_floorplan_defaults_to_the_start_floor_and_works_without_a_route(client: TestClient) -> None:
    svg = client.get("/api/navigation/floorplan.svg?from=药房&to=CT&lang=zh")
    assert svg.status_code == 200 and 'data-floor="1"' in svg.text and "门诊药房" in svg.text
    plain = client.get("/api/navigation/floorplan.svg?building=B&floor=3&lang=en")
    assert (
        plain.status_code == 200
        and "Health check-up centre" in plain.text
        and 'class="route"' not in plain.text
    )


def test_accept_language_sets_the_message_language(client: TestClient) -> None:
    response = client.get(
        "/api/navigation/route?from=entrance_main&to=火星科", headers={"Accept-Language": "en-GB"}
    )
    assert "information desk" in _error(response, 404, "unknown_place")


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/navigation/maps/no-such-map", 404, "unknown_map"),
        ("/api/navigation/route?map_id=no-such-map&from=a&to=b", 404, "unknown_map"),
        ("/api/navigation/route?map_id=../../etc/passwd&from=a&to=b", 404, "unknown_map"),
        ("/api/navigation/route?from=entrance_main&to=火星科", 404, "unknown_place"),
        ("/api/navigation/route?from=entrance_main&to=room_999", 404, "unknown_place"),
        ("/api/navigation/route?from=entrance_main", 422, "missing_param"),
        ("/api/navigation/route?to=pharmacy", 422, "missing_param"),
        ("/api/navigation/route?from=entrance_main&to=pharmacy&step_free=maybe", 422, "bad_param"),
        (
            "/api/navigation/route?from=entrance_main&to=medical_records&step_free=true",
            422,
            "no_step_free_route",
        ),
        ("/api/navigation/floorplan.svg?building=A&floor=x", 422, "bad_param"),
        ("/api/navigation/floorplan.svg?building=A&floor=9", 404, "unknown_floor"),
        ("/api/navigation/floorplan.svg?building=Q&floor=1", 404, "unknown_floor"),
        ("/api/navigation/floorplan.svg?building=A", 422, "missing_param"),
        ("/api/navigation/floorplan.svg?from=entrance_main", 422, "missing_param"),
    ],
)
def test_bad_input_is_a_clear_error(client: TestClient, url: str, status: int, code: str) -> None:
    message = _error(client.get(url), status, code)
    assert message and not message.startswith("Traceback")


def test_unknown_place_message_is_chinese_by_default(client: TestClient) -> None:
    message = _error(client.get("/api/navigation/route?from=entrance_main&to=火星科"), 404, "unknown_place")
    assert "火星科" in message and "导诊台" in message


def test_disconnected_floor_is_no_route(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm_backend="none", maps_dir=FIXTURE_MAPS)
    with TestClient(make_app(settings), raise_server_exceptions=False) as client:
        url = "/api/navigation/route?map_id=disconnected-test&from=door&to=island_room&lang=en"
        assert "no route" in _error(client.get(url), 422, "no_route")


def test_default_map_comes_from_settings_when_the_clinic_has_one(tmp_path: Path) -> None:
    with_map = NavigationRuntime(
        Settings(data_dir=tmp_path, default_clinic_id="disconnected-test", maps_dir=FIXTURE_MAPS)
    )
    assert with_map.default_map_id == "disconnected-test"
    own = NavigationRuntime(Settings(data_dir=tmp_path, default_clinic_id="demo-chc-east"))
    assert own.default_map_id == "demo-chc-east"
    without = NavigationRuntime(Settings(data_dir=tmp_path, default_clinic_id="demo-chc-west"))
    assert without.default_map_id == "demo-general-hospital"  # a centre without a map


def test_broken_map_file_is_503_not_500(tmp_path: Path) -> None:
    (tmp_path / "broken-map.yaml").write_text("id: broken-map\nname: [unclosed\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path, llm_backend="none", maps_dir=tmp_path)
    with TestClient(make_app(settings), raise_server_exceptions=False) as client:
        _error(client.get("/api/navigation/maps/broken-map"), 503, "map_unavailable")


# ---------------------------------------------------------------------------------- tiered care


def test_areas(client: TestClient) -> None:
    body = client.get("/api/tiered/areas").json()
    assert body["demo"] is True
    names = {a["name"] for a in body["areas"]}
    assert {"岭下村", "石门村", "东城街道"} <= names


def test_nearest_by_village_sentence(client: TestClient) -> None:
    body = client.get("/api/tiered/nearest", params={"area": "我住在石门村", "kind": "primary"}).json()
    assert body["area"]["id"] == "shimen_village"
    assert [s["id"] for s in body["services"]][:2] == ["demo-vc-shimen", "demo-chc-lingxia"]
    assert body["services"][1]["family_doctor_teams"][0]["id"] == "fd-lingxia-1"


def test_next_mobile_clinic_after_todays_visit_ended(client: TestClient) -> None:
    response = client.get(
        "/api/tiered/mobile-clinics/next", params={"area": "下一次巡回医疗车什么时候到岭下村？"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next"]["start"] == "2026-12-01T09:00:00+08:00"  # today's 09:00-11:30 visit is over at noon
    assert body["next"]["place"] == "岭下村村委会" and "王医生团队" in body["next"]["team"]
    assert "12月1日" in body["next"]["text"]
    en = client.get("/api/tiered/mobile-clinics/next?area=Shimen&lang=en&count=1").json()
    assert (
        en["next"]["start"] == "2026-11-24T14:00:00+08:00"
        and en["next"]["place"] == "Shimen village culture hall"
    )
    assert len(en["visits"]) == 1


def test_primary_care_for_triage_settings(client: TestClient) -> None:
    body = client.get("/api/tiered/primary-care?care_setting=community&area=石门村").json()
    assert body["services"][0]["id"] == "demo-vc-shimen" and body["family_doctor_teams"]
    emergency = client.get("/api/tiered/primary-care?care_setting=ambulance_ed&area=石门村&lang=en").json()
    assert emergency["services"] == [] and "120" in emergency["note"]


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/tiered/nearest?area=火星村", 404, "unknown_area"),
        ("/api/tiered/nearest", 422, "missing_param"),
        ("/api/tiered/nearest?area=石门村&kind=spa", 422, "unknown_kind"),
        ("/api/tiered/nearest?area=石门村&limit=abc", 422, "bad_param"),
        ("/api/tiered/mobile-clinics/next?area=火星村", 404, "unknown_area"),
        ("/api/tiered/mobile-clinics/next?area=", 422, "missing_param"),
        ("/api/tiered/mobile-clinics/next?area=岭下村&count=0", 422, "bad_param"),
        ("/api/tiered/mobile-clinics/next?area=东城街道", 404, "no_mobile_clinic"),
        ("/api/tiered/primary-care?care_setting=spa&area=石门村", 422, "unknown_care_setting"),
        ("/api/tiered/primary-care?care_setting=community", 422, "missing_param"),
    ],
)
def test_tiered_bad_input(client: TestClient, url: str, status: int, code: str) -> None:
    assert _error(client.get(url), status, code)


def test_unknown_village_message_in_both_languages(client: TestClient) -> None:
    zh = _error(client.get("/api/tiered/mobile-clinics/next?area=火星村"), 404, "unknown_area")
    en = _error(client.get("/api/tiered/mobile-clinics/next?area=火星村&lang=en"), 404, "unknown_area")
    assert "火星村" in zh and "村" in zh and "village" in en


def test_broken_tiered_data_is_503_not_500(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm_backend="none")
    app = make_app(settings)
    (tmp_path / "tiered.yaml").write_text("version: 1\ndemo: true\n", encoding="utf-8")
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.tiered.data_path = tmp_path / "tiered.yaml"  # swapped after the start-up check
        _error(client.get("/api/tiered/areas"), 503, "data_unavailable")
