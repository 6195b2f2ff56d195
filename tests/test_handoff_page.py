"""The clinician handoff page (server/static/handoff.html) end to end in headless Debian chromium
(Playwright with executable_path, never a downloaded browser) against a real uvicorn app: sign in
with a fever clinician account, see the clinic flag a buried red flag raised, open its SBAR and a
chat session's SBAR, switch language, view the FHIR export; a family account is turned away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import chromium_browser, serving
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from assistant.session import ConversationSession
from assistant.settings import Settings
from server.fever import routes as fever_routes
from server.fever.runtime import FeverRuntime
from server.handoff import HandoffRuntime
from server.handoff import routes as handoff_routes
from server.patients import PatientDirectory
from server.store import Decision, SessionStore

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

STATIC = Path(__file__).resolve().parent.parent / "server" / "static"
CLINIC_CODE = "handoff-page-code"
PASSWORD = "correct-horse-42"
TIMEOUT_MS = 20_000
BURIED = "挺好的，就是今天早上胸口压着疼，出冷汗，别的都还行"


@dataclass
class World:
    base: str
    chat_session_id: str
    conversation_id: str


def _chat_session(settings: Settings) -> str:
    store = SessionStore(settings.db_path)
    session = ConversationSession()
    for text in ["我爸爸65岁，今天早上胸口压着疼，出冷汗"]:
        reply = session.handle_user_message(text)
        decision = Decision(session.last_result, text) if session.last_result else None
        store.record_turn(
            session.session_id, session.to_dict(), [("user", text), ("assistant", reply.text)], decision
        )
    store.close()
    return session.session_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("handoff-web")
    settings = Settings(data_dir=data_dir, llm_backend="none", clinic_code=CLINIC_CODE)
    fever, handoff = FeverRuntime(settings), HandoffRuntime(settings)
    patients = PatientDirectory(data_dir / "patients.sqlite3")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await fever.start()
        await handoff.start()
        yield
        await handoff.stop()
        await fever.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.fever, app.state.handoff, app.state.patients = fever, handoff, patients
    app.include_router(fever_routes.router)
    app.include_router(handoff_routes.router)
    app.mount("/", StaticFiles(directory=STATIC), name="static")
    chat_id = _chat_session(settings)
    _, patient_token = patients.create(display_name="张阿姨")
    with serving(app, "daozhen-handoff-web-test") as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            for role, name in (("clinician", "nurse_zhao"), ("family", "dad_chen")):
                body: dict[str, Any] = {
                    "role": role,
                    "username": name,
                    "password": PASSWORD,
                    "display_name": name,
                }
                if role == "clinician":
                    body["clinic_code"] = CLINIC_CODE
                assert http.post("/api/fever/accounts", json=body).status_code == 201
            answered = http.post(
                "/api/followup/answer",
                json={
                    "plan_id": "post_surgery",
                    "check_id": "day3",
                    "question_id": "ps.wound_redness",
                    "text": BURIED,
                },
                headers={"Authorization": f"Bearer {patient_token}"},
            )
            assert answered.status_code == 200 and answered.json()["flag"], answered.text
        yield World(base, chat_id, answered.json()["conversation"]["conversation_id"])
    patients.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(world.base + "/handoff.html")
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _sign_in(page: Any, username: str) -> None:
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")


def test_clinician_sees_the_flag_and_the_sbar_sections(page: Any, world: World) -> None:
    expect(page.locator("#auth-section")).to_be_visible()
    _sign_in(page, "nurse_zhao")
    expect(page.locator("#workbench")).to_be_visible()
    flag = page.locator("#flag-list .queue-item")
    expect(flag).to_have_count(1)
    expect(flag).to_have_attribute("data-level", "emergency_ambulance")
    expect(flag).to_contain_text("胸口压着疼")
    expect(flag).to_contain_text("已建议拨打120")

    flag.locator(".open-sbar").click()
    expect(page.locator("#sbar")).to_be_visible()
    sections = page.locator("#sbar-sections .sbar-section")
    expect(sections).to_have_count(4)
    assert [sections.nth(i).get_attribute("data-sbar") for i in range(4)] == ["S", "B", "A", "R"]
    expect(sections.nth(0).locator("h3")).to_have_text("S 现状")
    expect(sections.nth(2)).to_contain_text("RF-CARD-01")
    expect(page.locator("#sbar-level")).to_have_attribute("data-level", "emergency_ambulance")
    expect(page.locator("#session-id")).to_have_value(world.conversation_id)


def test_chat_session_sbar_in_english_with_fhir(page: Any, world: World) -> None:
    _sign_in(page, "nurse_zhao")
    expect(page.locator("#workbench")).to_be_visible()
    page.fill("#session-id", world.chat_session_id)
    page.click("#open-form button[type=submit]")
    sections = page.locator("#sbar-sections .sbar-section")
    expect(sections).to_have_count(4)
    expect(page.locator("#sbar-audit [data-field=rule_ids]")).to_contain_text("RF-CARD-01")
    expect(page.locator("#sbar-audit [data-field=engine_version]")).to_contain_text("0.")
    expect(page.locator("#sbar-sources")).to_contain_text("redflags-adult#chest-pain")

    page.click(".lang-btn[data-lang=en]")
    expect(sections.nth(0).locator("h3")).to_have_text("S Situation")
    expect(sections.nth(3).locator("h3")).to_have_text("R Recommendation")
    expect(page.locator("#sbar-level")).to_contain_text("Call 120 now")
    expect(page.locator("#fhir-link")).to_have_text("Download FHIR")

    page.click("#fhir-view")
    expect(page.locator("#fhir-json")).to_be_visible()
    bundle = json.loads(page.locator("#fhir-json").text_content())
    assert bundle["type"] == "document" and bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    with page.expect_download() as download:
        page.click("#fhir-link")
    assert download.value.suggested_filename == f"handoff-{world.chat_session_id}.fhir.json"


def test_unknown_session_shows_a_clear_error(page: Any) -> None:
    _sign_in(page, "nurse_zhao")
    expect(page.locator("#workbench")).to_be_visible()
    page.fill("#session-id", "no-such-session")
    page.click("#open-form button[type=submit]")
    expect(page.locator("#notice")).to_contain_text("找不到这个会话")
    expect(page.locator("#sbar")).to_be_hidden()


def test_family_account_is_turned_away(page: Any) -> None:
    _sign_in(page, "dad_chen")
    expect(page.locator("#notice")).to_contain_text("只有医护账号")
    expect(page.locator("#workbench")).to_be_hidden()
