"""The chat page books through the service desk and then shows the patient's pushes
(/ws/patient, notify.v1): once each, acked, never again after a reload or a redelivery.

Real app under uvicorn, headless Debian chromium (/usr/bin/chromium) driven by Playwright; never a
downloaded browser.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium_browser, serving

from assistant.settings import Settings

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

PHONE = {"width": 375, "height": 667}
TIMEOUT_MS = 20_000
KEY_TOKEN = "daozhen.patient_token"


class _NoRetrievalNeeded:
    knowledge_version = "test"


@dataclass
class Served:
    app: Any
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from server.app import create_app

    data_dir = tmp_path_factory.mktemp("push-page")
    settings = Settings(data_dir=data_dir, llm_backend="none")
    app = create_app(settings, knowledge_loader=lambda _settings: _NoRetrievalNeeded())
    with serving(app, "daozhen-push-page-test") as url:
        yield Served(app, url, data_dir)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@dataclass
class PatientFrames:
    """What went over /ws/patient (all connections of the page, in order)."""

    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def notifications(self, notification_id: str) -> list[dict[str, Any]]:
        return [
            f for f in self.received if f.get("type") == "notification" and f.get("id") == notification_id
        ]

    def acks(self, notification_id: str) -> list[dict[str, Any]]:
        return [
            f
            for f in self.sent
            if f.get("type") == "ack" and notification_id in (f.get("id"), *f.get("ids", []))
        ]


@pytest.fixture
def page_and_frames(browser: Any, served: Served) -> Iterator[tuple[Any, PatientFrames]]:
    context = browser.new_context(viewport=PHONE, locale="zh-CN", has_touch=True, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    frames = PatientFrames()
    errors: list[str] = []

    def on_socket(ws: Any) -> None:
        if "/ws/patient" not in ws.url:
            return
        ws.on("framereceived", lambda payload: frames.received.append(json.loads(payload)))
        ws.on("framesent", lambda payload: frames.sent.append(json.loads(payload)))

    page.on("websocket", on_socket)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page, frames
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def wait_until(condition: Any, what: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def say(page: Any, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def test_book_in_the_page_then_pushes_show_once_and_survive_reload(
    page_and_frames: tuple[Any, PatientFrames], served: Served
) -> None:
    page, frames = page_and_frames
    page.goto(served.url + "/")
    page.wait_for_selector("#conn-status[data-state=online]", state="attached")

    # Book by typing, then pick a slot with its button.
    say(page, "帮我挂皮肤科的号")
    options = page.locator(".desk-card[data-desk-kind=slots] .desk-option")
    expect(options.first).to_be_visible()
    assert options.count() >= 2
    options.first.click()
    booked = page.locator(".desk-card[data-desk-kind=booked]")
    expect(booked).to_be_visible()
    expect(booked.locator(".route-head")).to_contain_text("皮肤科诊室")
    assert booked.locator(".route-steps li").count() >= 3
    assert booked.locator(".visit-steps li").count() >= 3
    plan = booked.locator("img.floorplan")
    expect(plan).to_be_visible()
    assert plan.get_attribute("src").startswith("/api/navigation/floorplan.svg?")
    page.wait_for_function("document.querySelector('img.floorplan').naturalWidth > 0")
    expect(page.locator(".msg-bot .reply-text").last).to_contain_text("已为您预约")

    # The token was kept (not in the transcript) and the page listens for pushes.
    token = page.evaluate(f"localStorage.getItem('{KEY_TOKEN}')")
    assert token
    assert token not in (page.evaluate("localStorage.getItem('daozhen.history')") or "")
    patient_id = served.app.state.patients.authenticate(token)
    assert patient_id

    # Starting the visit pushed its first step: shown as a notice, acked.
    step = page.locator(".notice-push[data-kind=visit_step]")
    expect(step).to_have_count(1)
    expect(step).to_contain_text("您已挂号")

    # A reminder published for this patient appears once, in the page language, marked late.
    hub = served.app.state.notify
    payload = {
        "kind": "revisit",
        "title_zh": "复诊提醒：明天 08:00 皮肤科",
        "title_en": "Follow-up visit tomorrow 08:00, dermatology",
        "body_zh": "请带上病历。",
        "body_en": "Bring your records.",
        "late": True,
    }
    notification_id = hub.publish(patient_id, "reminder", payload)
    notice = page.locator(f".notice-push[data-notification-id='{notification_id}']")
    expect(notice).to_have_count(1)
    expect(notice).to_have_attribute("data-kind", "reminder")
    expect(notice).to_contain_text("复诊提醒：明天 08:00 皮肤科（补发）")
    expect(notice).to_contain_text("请带上病历。")
    wait_until(lambda: frames.acks(notification_id), "the ack")
    wait_until(lambda: not hub.pending(patient_id), "the outbox to be empty")

    # The language switch rewords the notice; back to Chinese.
    page.click(".lang-btn[data-lang=en]")
    expect(notice).to_contain_text("Follow-up visit tomorrow 08:00, dermatology (late)")
    page.click(".lang-btn[data-lang=zh]")

    # Reload: the notice comes back from the transcript, once; the socket does not add another.
    page.reload()
    page.wait_for_selector("#conn-status[data-state=online]", state="attached")
    wait_until(lambda: len([f for f in frames.received if f.get("type") == "ready"]) >= 2, "the push socket")
    expect(page.locator(f".notice-push[data-notification-id='{notification_id}']")).to_have_count(1)
    expect(page.locator(".notice-push[data-kind=visit_step]")).to_have_count(1)

    # As if the ack had been lost: the server sends it again on the next connection; the page acks
    # it silently and does not show it a second time.
    with sqlite3.connect(served.data_dir / "reminders.sqlite3") as db:
        db.execute(
            "UPDATE notifications SET delivered_at = NULL, claimed_by = NULL, claim_expires_at = NULL"
            " WHERE notification_id = ?",
            (notification_id,),
        )
    assert hub.pending(patient_id)
    acks_before = len(frames.acks(notification_id))
    page.reload()
    page.wait_for_selector("#conn-status[data-state=online]", state="attached")
    wait_until(lambda: len(frames.notifications(notification_id)) >= 2, "the redelivery")
    assert frames.notifications(notification_id)[-1]["redelivered"] is True
    wait_until(lambda: len(frames.acks(notification_id)) > acks_before, "the ack of the redelivery")
    wait_until(lambda: not hub.pending(patient_id), "the outbox to be empty again")
    expect(page.locator(f".notice-push[data-notification-id='{notification_id}']")).to_have_count(1)

    # A live push after the reloads still arrives (the page reconnected with the stored token).
    second_id = hub.publish(patient_id, "report_ready", {"exam_booking_id": "x"})
    expect(page.locator(f".notice-push[data-notification-id='{second_id}']")).to_contain_text("报告已出")

    # "New conversation" forgets the patient: no token, no push socket, an empty log.
    page.click("#new-chat")
    page.wait_for_selector("#conn-status[data-state=online]", state="attached")
    assert page.evaluate(f"localStorage.getItem('{KEY_TOKEN}')") is None
    expect(page.locator(".notice-push")).to_have_count(0)
    third_id = hub.publish(patient_id, "reminder", payload)
    page.wait_for_timeout(500)
    expect(page.locator(f".notice-push[data-notification-id='{third_id}']")).to_have_count(0)
