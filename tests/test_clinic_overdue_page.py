"""The chronic-care worklist tab of the clinician page (server/static/handoff.html#overdue) end to
end in headless Debian chromium (Playwright with executable_path, never a downloaded browser)
against the real app (create_app) under uvicorn: a clinician signs in and sees the urgent patient
first, the overdue one next, the on-target one not at all, each with the reasons in the page
language, days overdue, due date and latest reading; records "12/8 kPa" and sees 90/60 mmHg with
the conversion warning; an urgent reading raises the banner; a family account gets the 403; the
clinic page and this page link to each other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from browser_support import chromium_browser, serving

from assistant.settings import Settings

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CLINIC_CODE = "overdue-page-code"
PASSWORD = "correct-horse-42"
TIMEOUT_MS = 20_000
SESSION_KEY = "daozhen.clinic.session"  # handoff.js / clinic.js
CLINIC_TZ = ZoneInfo("Asia/Shanghai")  # settings.timezone: the server's "today" is the clinic's


class _NoKnowledgeBase:
    knowledge_version = "test"


@dataclass
class World:
    base: str
    urgent_id: str  # 190/120 today
    overdue_id: str  # last visit 200 days ago
    on_target_id: str  # 120/75 five days ago
    family_token: str


def _days_ago(days: int) -> str:
    return (datetime.now(CLINIC_TZ).date() - timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from server.app import create_app
    from server.rules_chat import RulesOnlyChatService

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("overdue-web"), llm_backend="none", clinic_code=CLINIC_CODE
    )
    app = create_app(
        settings, chat_service=RulesOnlyChatService(), knowledge_loader=lambda _s: _NoKnowledgeBase()
    )
    with serving(app, "daozhen-overdue-web-test") as base, httpx.Client(base_url=base, timeout=30) as http:
        tokens: dict[str, str] = {}
        for role, name in (("clinician", "dr_wang"), ("family", "son_liu")):
            body: dict[str, Any] = {
                "role": role,
                "username": name,
                "password": PASSWORD,
                "display_name": name,
            }
            if role == "clinician":
                body["clinic_code"] = CLINIC_CODE
            created = http.post("/api/fever/accounts", json=body)
            assert created.status_code == 201, created.text
            tokens[role] = created.json()["token"]
        doctor = {"Authorization": f"Bearer {tokens['clinician']}"}

        def register(name: str, last_visit: str, reading: str, taken_on: str) -> str:
            made = http.post(
                "/api/chronic/patients",
                json={
                    "name": name,
                    "conditions": ["hypertension"],
                    "last_visit": last_visit,
                    "village": "东村",
                },
                headers=doctor,
            )
            assert made.status_code == 201, made.text
            patient_id = made.json()["patient_id"]
            added = http.post(
                f"/api/chronic/patients/{patient_id}/readings",
                json={"kind": "bp", "text": reading, "taken_on": taken_on},
                headers=doctor,
            )
            assert added.status_code == 201, added.text
            return str(patient_id)

        world = World(
            base=base,
            urgent_id=register("王大爷", _days_ago(20), "190/120", _days_ago(0)),
            overdue_id=register("李阿姨", _days_ago(200), "130/80", _days_ago(200)),
            on_target_id=register("赵叔", _days_ago(10), "120/75", _days_ago(5)),
            family_token=tokens["family"],
        )
        yield world


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(world.base + "/handoff.html")
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _sign_in(page: Any, username: str = "dr_wang") -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")


def _open_worklist(page: Any) -> Any:
    _sign_in(page)
    expect(page.locator("#workbench")).to_be_visible()
    expect(page.locator("#panel-overdue")).to_be_hidden()  # the handoff tab comes first
    page.click("#tab-overdue")
    expect(page.locator("#tab-overdue")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-handoff")).to_be_hidden()
    items = page.locator("#overdue-list .overdue-item")
    expect(items).to_have_count(2)
    return items


def test_worklist_lists_urgent_first_with_reasons_and_leaves_out_the_controlled(
    page: Any, world: World
) -> None:
    items = _open_worklist(page)
    urgent, overdue = items.nth(0), items.nth(1)
    expect(urgent).to_have_attribute("data-patient-id", world.urgent_id)
    expect(urgent).to_have_attribute("data-urgent", "true")
    expect(urgent.locator(".patient-name")).to_have_text("王大爷")
    expect(urgent.locator("[data-chip=urgent]")).to_have_text("紧急")
    expect(urgent.locator(".reason-list li[data-code=urgent]").first).to_contain_text("收缩压≥180 mmHg")
    expect(urgent.locator(".latest-reading")).to_contain_text(f"190/120 mmHg（{_days_ago(0)}）")

    expect(overdue).to_have_attribute("data-patient-id", world.overdue_id)
    expect(overdue).to_have_attribute("data-urgent", "false")
    expect(overdue.locator(".reason-list li[data-code=overdue]")).to_contain_text("随访已逾期 110 天")
    expect(overdue.locator(".overdue-days")).to_have_text("逾期 110 天")
    expect(overdue.locator(".due-date")).to_have_text(f"应随访：{_days_ago(110)}")
    expect(overdue.locator(".latest-reading")).to_contain_text("130/80 mmHg")

    expect(page.locator(f"[data-patient-id='{world.on_target_id}']")).to_have_count(0)
    expect(page.locator("#overdue-list")).not_to_contain_text("赵叔")
    expect(page.locator("#overdue-count")).to_have_text("2")

    # Reasons come from the server in the page language.
    page.click(".lang-btn[data-lang=en]")
    expect(page.locator("#tab-overdue")).to_have_text("Chronic follow-up")
    expect(overdue.locator(".reason-list li[data-code=overdue]")).to_contain_text(
        "follow-up 110 days overdue"
    )
    expect(urgent.locator(".reason-list li[data-code=urgent]").first).to_contain_text("urgent referral")
    expect(overdue.locator(".overdue-days")).to_have_text("110 days overdue")


def test_recording_kpa_shows_the_converted_value_and_the_warning(page: Any, world: World) -> None:
    items = _open_worklist(page)
    items.nth(1).locator(".record-reading").click()
    expect(page.locator("#reading-patient")).to_have_value(world.overdue_id)
    page.fill("#reading-text", "12/8 kPa")
    page.click("#reading-form button[type=submit]")
    expect(page.locator("#reading-result")).to_be_visible()
    expect(page.locator("#reading-parsed")).to_contain_text("90/60 mmHg")
    expect(page.locator("#reading-parsed")).to_contain_text("由 kPa 换算")
    warning = page.locator("#reading-warnings li[data-code=converted_kpa]")
    expect(warning).to_contain_text("12/8 kPa 已换算为 90/60 mmHg")
    expect(page.locator("#reading-urgent")).to_be_hidden()
    # The list reloads with the new latest reading.
    expect(items.nth(1).locator(".latest-reading")).to_contain_text("90/60 mmHg")


def test_urgent_reading_raises_the_banner_and_bad_readings_explain(page: Any, world: World) -> None:
    page.click(".lang-btn[data-lang=en]")
    items = _open_worklist(page)
    items.nth(0).locator(".record-reading").click()
    page.fill("#reading-text", "150/")
    page.click("#reading-form button[type=submit]")
    expect(page.locator("#reading-error")).to_be_visible()
    expect(page.locator("#reading-result")).to_be_hidden()

    page.fill("#reading-text", "200/125")
    page.click("#reading-form button[type=submit]")
    banner = page.locator("#reading-urgent")
    expect(banner).to_be_visible()
    expect(page.locator("#reading-error")).to_be_hidden()
    expect(banner).to_contain_text("Urgent reading")
    expect(banner.locator("li").first).to_have_attribute("data-rule", "HTN-URG-01")
    expect(banner).to_contain_text("120")  # the triage engine's advice names 120
    expect(page.locator("#reading-level [data-level=urgent]")).to_have_text("Urgent")
    expect(items.nth(0)).to_have_attribute("data-patient-id", world.urgent_id)


def test_family_account_gets_the_403_message(page: Any, world: World) -> None:
    _sign_in(page, "son_liu")
    expect(page.locator("#notice")).to_contain_text("只有医护账号")
    expect(page.locator("#workbench")).to_be_hidden()

    # Even with a doctored session the server says no, and the page shows its message.
    session = {"token": world.family_token, "role": "clinician", "display_name": "son_liu"}
    page.evaluate("([k, v]) => window.localStorage.setItem(k, v)", [SESSION_KEY, json.dumps(session)])
    page.goto(world.base + "/handoff.html#overdue")
    page.reload()  # only the hash changed: load the page again so it reads the stored session
    expect(page.locator("#panel-overdue")).to_be_visible()
    expect(page.locator("#overdue-error")).to_have_text("只有医护账号可以这样做。")
    expect(page.locator("#overdue-list .overdue-item")).to_have_count(0)


def test_clinic_page_and_handoff_page_link_to_each_other(page: Any, world: World) -> None:
    expect(page.locator("#nav-clinic")).to_have_attribute("href", "/clinic.html")
    page.click("#nav-clinic")
    page.wait_for_url("**/clinic.html")
    link = page.locator("#nav-handoff")
    expect(link).to_contain_text("慢病随访")
    link.click()
    page.wait_for_url("**/handoff.html")
    expect(page.locator("#auth-section")).to_be_visible()
