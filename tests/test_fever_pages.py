"""The child-fever pages (server/static/fever.html for families, clinic.html for clinicians) end to
end in a real headless Chromium against the real app on a free loopback port.

One uvicorn server per module (create_app, data in a temp dir, the knowledge base stubbed out);
each test opens fresh browser contexts. Chromium is Debian's /usr/bin/chromium driven by
Playwright (never `playwright install`). The thermometer is the page's own simulator: it builds
Bluetooth Health Thermometer frames (0x2A1C) in JavaScript and streams them over /ws/fever exactly
as a real device's notifications would go.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium_browser, serving

from assistant.settings import Settings
from tools.ble_thermometer import (
    FLAG_TIMESTAMP,
    FLAG_TYPE,
    TemperatureType,
    encode_temperature_measurement,
    parse_temperature_measurement,
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

STATIC = Path(__file__).resolve().parent.parent / "server" / "static"
SHOTS = Path("/tmp")
PHONE = {"width": 375, "height": 667}
DESK = {"width": 1280, "height": 800}
TIMEOUT_MS = 20_000
PASSWORD = "correct-horse-42"
SIM_VALUES = [37.8, 38.6, 39.4]
CLINIC_CODE = "ward-7-signup"
NEAREST_EMERGENCY = "市儿童医院急诊（24小时）"


# --------------------------------------------------------------------------------------------
# The server and the browser
# --------------------------------------------------------------------------------------------


class _NoRetrievalNeeded:
    """Stands in for the knowledge base: the fever pages need no vector search."""

    knowledge_version = "test"


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("fever-web"),
        llm_backend="none",
        clinic_code=CLINIC_CODE,
        fever_nearest_emergency=NEAREST_EMERGENCY,
    )


@pytest.fixture(scope="module")
def app(app_settings: Settings) -> Any:
    from server.app import create_app
    from server.rules_chat import RulesOnlyChatService

    app = create_app(
        app_settings,
        chat_service=RulesOnlyChatService(),
        knowledge_loader=lambda _settings: _NoRetrievalNeeded(),
    )
    app.state.fever.config.reminder_check_s = 0.3  # due reminders go out within a blink
    return app


@pytest.fixture(scope="module")
def base_url(app: Any) -> Iterator[str]:

    with serving(app, "daozhen-fever-web-test") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@dataclass
class Tab:
    """A page plus its websocket traffic, requests and JavaScript errors."""

    page: Any
    base: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def frames(self, kind: str, direction: str = "received") -> list[dict[str, Any]]:
        pool = self.received if direction == "received" else self.sent
        return [f for f in pool if f.get("type") == kind]

    def wait_online(self) -> None:
        self.page.wait_for_selector("#conn-status[data-state=online]", state="attached")


def _json_or_none(payload: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(payload)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@pytest.fixture
def open_tab(browser: Any, base_url: str) -> Iterator[Any]:
    contexts: list[Any] = []
    tabs: list[Tab] = []

    def opener(path: str, viewport: dict[str, int] = PHONE, mobile: bool = True) -> Tab:
        context = browser.new_context(
            viewport=viewport, locale="zh-CN", has_touch=mobile, is_mobile=mobile, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page, base_url)

        def on_socket(ws: Any) -> None:
            ws.on("framesent", lambda p: (m := _json_or_none(p)) and tab.sent.append(m))
            ws.on("framereceived", lambda p: (m := _json_or_none(p)) and tab.received.append(m))

        page.on("websocket", on_socket)
        page.on("request", lambda request: tab.requests.append(request.url))
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        page.goto(base_url + path)
        tabs.append(tab)
        return tab

    yield opener
    for context in contexts:
        context.close()
    errors = [e for tab in tabs for e in tab.errors]
    assert not errors, f"JavaScript errors on the page: {errors}"


# --------------------------------------------------------------------------------------------
# Page steps
# --------------------------------------------------------------------------------------------


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def sign_up_family(tab: Tab) -> str:
    page = tab.page
    username = _unique("family")
    page.click("#tab-signup")
    page.fill("#signup-display", "豆豆妈妈")
    page.fill("#signup-username", username)
    page.fill("#signup-password", PASSWORD)
    page.click("#signup-form button[type=submit]")
    expect(page.locator("#child-section")).to_be_visible()
    tab.wait_online()
    return username


def sign_up_clinician(tab: Tab, clinic_code: str) -> None:
    page = tab.page
    page.click("#tab-signup")
    page.fill("#signup-display", "王护士")
    page.fill("#signup-username", _unique("nurse"))
    page.fill("#signup-password", PASSWORD)
    page.fill("#signup-clinic-code", clinic_code)
    page.click("#signup-form button[type=submit]")
    expect(page.locator("#workbench")).to_be_visible()
    tab.wait_online()


def two_years_ago() -> str:
    today = date.today()
    born = (
        today.replace(year=today.year - 2)
        if not (today.month == 2 and today.day == 29)
        else date(today.year - 2, 2, 28)
    )
    return born.isoformat()


def add_child(tab: Tab, name: str = "豆豆", weight: str = "12", age_text: str = "2 岁") -> None:
    page = tab.page
    details = page.locator("#add-child")
    expect(details).to_have_attribute("open", "")  # opened by itself while there is no child
    page.fill("#child-name", name)
    page.fill("#child-birth", two_years_ago())
    page.fill("#child-weight", weight)
    page.fill("#child-allergies", "青霉素")
    page.click("#child-form button[type=submit]")
    expect(page.locator("#child-work")).to_be_visible()
    expect(page.locator("#child-select option:checked")).to_have_text(name)
    expect(page.locator("#child-summary")).to_contain_text(age_text)


def chart_values(page: Any) -> list[float]:
    return page.eval_on_selector_all(
        ".fever-chart .reading-point", "ps => ps.map(p => Number(p.dataset.value))"
    )


def horizontal_overflow(page: Any) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth"))


def run_simulator(tab: Tab, values: list[float]) -> None:
    page = tab.page
    page.fill("#sim-values", ", ".join(f"{v:.1f}" for v in values))
    page.click("#sim-btn")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_simulated_thermometer_chart_red_alert_and_form_reaches_the_clinician(open_tab: Any) -> None:
    # The clinician signs in first, in a browser context of their own (a desk-sized screen).
    desk = open_tab("/clinic.html", viewport=DESK, mobile=False)
    sign_up_clinician(desk, CLINIC_CODE)
    expect(desk.page.locator("#forms-empty")).to_be_visible()

    parent = open_tab("/fever.html")
    page = parent.page
    expect(page.locator("#auth-section")).to_be_visible()
    expect(page.locator("#safety-banner a[href='tel:120']")).to_be_visible()
    sign_up_family(parent)
    add_child(parent)
    banner = page.locator("#grade-banner")
    # a new child has no readings: no colour yet, or green once the server's first grade arrives
    # (a race between the page and the push, so either is right here)
    expect(banner).to_have_attribute("data-colour", re.compile(r"^(none|green)$"))
    expect(page.locator(".fever-chart .reading-point")).to_have_count(0)

    # Three thermometer notifications from the simulator -> three points on the chart.
    run_simulator(parent, SIM_VALUES)
    expect(page.locator(".fever-chart .reading-point")).to_have_count(3)
    assert chart_values(page) == SIM_VALUES
    expect(page.locator(".fever-chart .reading-line")).to_have_count(1)
    expect(page.locator("#ble-status")).to_contain_text("3")

    # What went over the wire are genuine 0x2A1C frames, hex-encoded, one per reading.
    ble = parent.frames("ble", "sent")
    assert len(ble) == 3
    child_id = page.evaluate("window.daozhenFever.page.childId")
    assert {f["child_id"] for f in ble} == {child_id}
    parsed = [parse_temperature_measurement(bytes.fromhex(f["payload_hex"])) for f in ble]
    assert [m.value_c for m in parsed] == SIM_VALUES
    assert all(m.unit == "C" and m.flags & FLAG_TIMESTAMP and m.flags & FLAG_TYPE for m in parsed)
    assert all(m.temperature_type == TemperatureType.armpit for m in parsed)
    stamps = [m.timestamp for m in parsed]
    assert stamps == sorted(stamps) and all(s is not None and s <= datetime.now() for s in stamps)

    # The colour banner shows the grade of the diary, in words as well as colour.
    expect(banner).not_to_have_attribute("data-colour", "none")
    colour = banner.get_attribute("data-colour")
    assert colour in {"green", "orange", "red"}
    expect(page.locator("#grade-label")).not_to_be_empty()
    expect(page.locator("#grade-meaning")).not_to_be_empty()
    grades = [g for g in parent.frames("grade") if g.get("child_id") == child_id]
    assert grades, "the server pushes the grade after each thermometer reading"
    assert banner.get_attribute("data-colour") == grades[-1]["grade"]["colour"]
    assert horizontal_overflow(page) <= 0
    page.screenshot(path=str(SHOTS / "daozhen_fever_page.png"), full_page=True)
    page.locator("#grade-banner").screenshot(path=str(SHOTS / "daozhen_fever_banner.png"))
    page.locator("#chart").screenshot(path=str(SHOTS / "daozhen_fever_chart.png"))

    # A seizure turns the child red: an alert is pushed at once and shown prominently, with 120.
    page.fill("#symptom-text", "刚才抽搐了一次，现在叫不醒")
    page.click("#symptom-form button[type=submit]")
    alert = page.locator("#alert")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert.locator("a.call-120[href='tel:120']")).to_be_visible()
    expect(alert).to_contain_text("120")
    expect(alert.locator("#alert-message")).to_contain_text("豆豆")
    expect(alert.locator("#alert-emergency")).to_contain_text(NEAREST_EMERGENCY)
    pushed = [a for a in parent.frames("alert") if a.get("child_id") == child_id]
    assert pushed and pushed[-1]["colour"] == "red"
    expect(banner).to_have_attribute("data-colour", "red")
    expect(page.locator("#grade-call")).to_be_visible()
    expect(page.locator(".fever-chart .band-red").first).to_be_attached()  # the colour change is on the chart
    expect(page.locator(".fever-chart .symptom-marker")).to_have_count(1)
    page.locator("#chart").screenshot(path=str(SHOTS / "daozhen_fever_chart_red.png"))
    alert.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "daozhen_fever_alert.png"))

    # The pre-consultation form: built from the diary, reviewed, sent.
    page.fill("#form-note", "晚上九点开始烧")
    page.click("#form-build")
    review = page.locator("#form-review")
    expect(review).to_be_visible()
    expect(review.locator("dd[data-field=peak]")).to_contain_text("39.4")
    expect(review.locator("dd[data-field=symptoms]")).to_contain_text("抽搐")
    expect(review.locator("dd[data-field=weight_kg]")).to_contain_text("12")
    expect(review.locator("dd[data-field=allergies]")).to_contain_text("青霉素")
    expect(review.locator("dd[data-field=colour_history] li[data-colour=red]")).to_have_count(1)
    expect(review.locator("dd[data-field=note]")).to_have_text("晚上九点开始烧")
    form_id = page.evaluate("window.daozhenFever.page.draft.form_id")
    assert form_id
    assert horizontal_overflow(page) <= 0
    review.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "daozhen_fever_form.png"))

    sent_at = time.monotonic()
    page.click("#form-send")
    item = desk.page.locator(f".queue-item[data-form-id='{form_id}']")
    # pushed, not polled: the latency target (< 1 s) is measured by `make bench`, not asserted here,
    # because a shared 2-core CI machine makes wall-clock assertions flaky
    expect(item).to_be_visible(timeout=10000)
    arrived_in = time.monotonic() - sent_at
    print(f"form reached the clinician page in {arrived_in:.2f} s")
    expect(page.locator("#form-status")).to_have_attribute("data-status", "sent")
    expect(page.locator("#form-send")).to_be_disabled()
    assert [f for f in desk.frames("form") if (f.get("form") or {}).get("form_id", form_id) == form_id]

    # The clinician sees the colour and a summary, opens the form, reads the FHIR export.
    expect(item).to_have_attribute("data-colour", "red")
    expect(item.locator(".colour-chip")).to_have_text("红")
    expect(item).to_contain_text("豆豆")
    expect(item.locator(".queue-summary")).to_contain_text("39.4")
    item.locator(".open-form").click()
    detail = desk.page.locator("#form-detail")
    expect(detail).to_be_visible()
    expect(detail.locator("dd[data-field=symptoms]")).to_contain_text("抽搐")
    expect(detail.locator("dd[data-field=doses]")).to_be_visible()
    expect(desk.page.locator("#fhir-link")).to_have_attribute("href", f"/api/fever/forms/{form_id}/fhir")
    desk.page.click("#fhir-view")
    fhir = desk.page.locator("#fhir-json")
    expect(fhir).to_be_visible()
    bundle = json.loads(fhir.inner_text())
    assert bundle["resourceType"] == "Bundle"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert "QuestionnaireResponse" in kinds and kinds.count("Observation") == 3
    assert "8310-5" in fhir.inner_text()
    with desk.page.expect_download() as download_info:
        desk.page.click("#fhir-link")
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    assert json.loads(Path(download.path()).read_text(encoding="utf-8"))["resourceType"] == "Bundle"
    desk.page.screenshot(path=str(SHOTS / "daozhen_clinic.png"), full_page=True)

    # A nurse callback: requested by the family, queued on the desk, marked handled.
    page.fill("#callback-phone", "138 0000 0000")
    page.fill("#callback-note", "想问要不要去急诊")
    page.click("#callback-form button[type=submit]")
    expect(page.locator("#callback-status")).not_to_be_empty()
    queued = desk.page.locator("#callback-list .queue-item").first
    expect(queued).to_be_visible()
    expect(queued).to_contain_text("豆豆")
    expect(queued).to_contain_text("想问要不要去急诊")
    expect(queued).to_have_attribute("data-colour", "red")
    expect(queued.locator("a.phone-link")).to_have_attribute("href", "tel:13800000000")
    queued.locator(".mark-handled").click()
    expect(queued.locator(".mark-handled")).to_be_disabled()
    expect(queued.locator(".mark-handled")).to_have_text("已处理")
    expect(desk.page.locator("#callbacks-count")).to_be_empty()
    desk.page.locator("#callback-list").screenshot(path=str(SHOTS / "daozhen_clinic_callbacks.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "daozhen_fever_top.png"))

    outside = [
        u for tab in (parent, desk) for u in tab.requests if not u.startswith((tab.base, "data:", "blob:"))
    ]
    assert not outside, f"the pages fetched from outside the app: {outside}"


def test_doses_manual_readings_and_refusals(open_tab: Any) -> None:
    parent = open_tab("/fever.html")
    page = parent.page
    sign_up_family(parent)
    add_child(parent, name="小米")

    # A reading by hand, with its site.
    page.fill("#reading-value", "38.2")
    page.select_option("#reading-site", "ear")
    page.click("#reading-form button[type=submit]")
    expect(page.locator(".fever-chart .reading-point")).to_have_count(1)
    assert chart_values(page) == [38.2]
    expect(page.locator("#grade-banner")).not_to_have_attribute("data-colour", "none")

    # An impossible value is refused with a readable message and not charted.
    page.fill("#reading-value", "45")
    page.select_option("#reading-unit", "C")
    page.click("#reading-form button[type=submit]")
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(re.compile("45|重新|测"))
    expect(page.locator(".fever-chart .reading-point")).to_have_count(1)

    # An allowed dose is logged and marked on the chart; the same drug again at once is refused.
    page.fill("#dose-drug", "布洛芬")
    page.fill("#dose-mg", "100")
    page.click("#dose-form button[type=submit]")
    result = page.locator("#dose-result")
    expect(result).to_have_attribute("data-state", "logged")
    expect(page.locator(".fever-chart .dose-marker")).to_have_count(1)
    page.fill("#dose-drug", "布洛芬")
    page.fill("#dose-mg", "100")
    page.click("#dose-form button[type=submit]")
    expect(result).to_have_attribute("data-state", "refused")
    expect(result.locator(".dose-reason")).not_to_be_empty()
    expect(page.locator(".fever-chart .dose-marker")).to_have_count(1)  # a refusal is not logged

    # Not a fever medicine Daozhen checks: refused, pointing to a doctor.
    page.fill("#dose-drug", "阿司匹林")
    page.fill("#dose-mg", "100")
    page.click("#dose-form button[type=submit]")
    expect(result).to_have_attribute("data-state", "refused")
    expect(result).to_contain_text(re.compile("医生|药师"))
    assert horizontal_overflow(page) <= 0
    result.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "daozhen_fever_dose.png"))


def test_due_reminder_is_pushed_and_shown(open_tab: Any, app: Any) -> None:
    parent = open_tab("/fever.html")
    page = parent.page
    sign_up_family(parent)
    add_child(parent, name="圆圆")
    page.fill("#reading-value", "38.4")
    page.click("#reading-form button[type=submit]")
    planned = page.locator("#reminder-list li[data-status=pending]")
    expect(planned.first).to_be_visible()  # the re-measure time planned from the colour
    expect(page.locator("#grade-remeasure")).to_contain_text(planned.first.locator("time").inner_text())

    fever = app.state.fever
    real_clock = fever.clock
    fever.clock = lambda: real_clock() + timedelta(hours=5)  # the re-measure time has come
    try:
        expect(page.locator("#reminder-list li[data-status=sent]").first).to_be_visible(timeout=5000)
    finally:
        fever.clock = real_clock
    pushed = parent.frames("reminder")
    assert pushed and pushed[0]["message"]
    expect(page.locator("#notice")).to_contain_text(pushed[0]["message"][:6])


def test_without_web_bluetooth_the_page_says_what_to_do(open_tab: Any) -> None:
    parent = open_tab("/fever.html")
    page = parent.page
    sign_up_family(parent)
    add_child(parent, name="安安")
    assert page.evaluate("'bluetooth' in navigator && !!navigator.bluetooth") is False  # headless
    page.click("#ble-btn")
    status = page.locator("#ble-status")
    expect(status).to_have_attribute("data-state", "unavailable")
    expect(status).to_contain_text("手动输入")


# A stand-in for the browser's Web Bluetooth stack: one thermometer that notifies the frames in
# window.__bleFrames (hex) once notifications start. Injected before the page's own scripts.
FAKE_WEB_BLUETOOTH = """
(() => {
  class FakeCharacteristic extends EventTarget {
    async startNotifications() {
      setTimeout(() => {
        for (const hex of window.__bleFrames || []) {
          const bytes = new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
          this.value = new DataView(bytes.buffer);
          this.dispatchEvent(new Event("characteristicvaluechanged"));
        }
      }, 50);
      return this;
    }
  }
  const characteristic = new FakeCharacteristic();
  const service = {
    getCharacteristic: async (uuid) => { window.__bleCharacteristic = uuid; return characteristic; },
  };
  const server = {
    getPrimaryService: async (uuid) => { window.__bleService = uuid; return service; },
  };
  const device = Object.assign(new EventTarget(), {
    name: "Fake thermometer",
    gatt: { connect: async () => server },
  });
  Object.defineProperty(navigator, "bluetooth", {
    value: {
      getAvailability: async () => true,
      requestDevice: async (options) => { window.__bleRequest = options; return device; },
    },
  });
})();
"""


def test_web_bluetooth_thermometer_notifications_reach_the_chart(open_tab: Any) -> None:
    parent = open_tab("/fever.html")
    page = parent.page
    page.add_init_script(FAKE_WEB_BLUETOOTH)
    page.reload()
    sign_up_family(parent)
    add_child(parent, name="蓝蓝")
    now = datetime.now().replace(microsecond=0)
    frames = [
        encode_temperature_measurement(38.1, "C", now - timedelta(minutes=30), TemperatureType.armpit),
        encode_temperature_measurement(101.3, "F", now - timedelta(minutes=10), TemperatureType.tympanum),
    ]
    frames.append(frames[0])  # resent after a reconnect: recorded once
    page.evaluate("hexes => { window.__bleFrames = hexes; }", [f.hex() for f in frames])
    page.click("#ble-btn")
    expect(page.locator("#ble-status")).to_have_attribute("data-state", "connected")
    assert page.evaluate("window.__bleRequest") == {"filters": [{"services": [0x1809]}]}
    assert page.evaluate("[window.__bleService, window.__bleCharacteristic]") == [0x1809, 0x2A1C]
    expect(page.locator(".fever-chart .reading-point")).to_have_count(2)
    assert chart_values(page) == [38.1, 38.5]  # 101.3 °F is 38.5 °C
    sent = [bytes.fromhex(f["payload_hex"]) for f in parent.frames("ble", "sent")]
    assert sent == frames  # the page forwards the device's bytes untouched
    deadline = time.monotonic() + 5
    while len(parent.frames("saved")) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert [f["duplicate"] for f in parent.frames("saved")] == [False, False, True]
    expect(page.locator(".fever-chart .reading-point")).to_have_count(2)


def test_english_family_page_and_reload_keeps_the_family_signed_in(open_tab: Any) -> None:
    parent = open_tab("/fever.html")
    page = parent.page
    assert horizontal_overflow(page) <= 0  # the sign-in screen at 375 px
    page.click(".lang-btn[data-lang=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#tab-signup")).to_have_text("Sign up")
    expect(page.locator("#safety-banner")).to_contain_text("not a diagnosis")
    sign_up_family(parent)  # the account speaks English: grades and pushes come in English
    add_child(parent, name="Lele", age_text="2 years")
    expect(page.locator("#sim-btn")).to_have_text("Simulator")
    expect(page.locator("#ble-btn")).to_have_text("Connect thermometer")
    run_simulator(parent, [38.9])
    expect(page.locator(".fever-chart .reading-point")).to_have_count(1)
    expect(page.locator("#grade-meaning")).to_have_text(re.compile(r"^[^\u4e00-\u9fff]{20,}$"))  # no Chinese
    expect(page.locator("#grade-label")).to_have_text(re.compile("green|orange|red", re.IGNORECASE))
    page.screenshot(path=str(SHOTS / "daozhen_fever_en.png"), full_page=True)

    page.reload()
    parent.wait_online()
    expect(page.locator("#child-work")).to_be_visible()
    expect(page.locator(".fever-chart .reading-point")).to_have_count(1)
    for selector in ("#sim-btn", "#ble-btn", ".lang-btn", ".primary-btn", "#logout-btn"):
        boxes = page.locator(selector)
        for i in range(boxes.count()):
            if boxes.nth(i).is_visible():
                box = boxes.nth(i).bounding_box()
                assert box and box["height"] >= 44, selector
    assert horizontal_overflow(page) <= 0

    page.click("#logout-btn")
    expect(page.locator("#auth-section")).to_be_visible()
    expect(page.locator("#child-work")).to_be_hidden()


def test_clinic_page_at_phone_width(open_tab: Any) -> None:
    desk = open_tab("/clinic.html")
    assert horizontal_overflow(desk.page) <= 0
    sign_up_clinician(desk, CLINIC_CODE)
    assert horizontal_overflow(desk.page) <= 0
    # A wrong clinic code is refused with a readable message.
    other = open_tab("/clinic.html")
    other.page.click("#tab-signup")
    other.page.fill("#signup-display", "x")
    other.page.fill("#signup-username", _unique("nurse"))
    other.page.fill("#signup-password", PASSWORD)
    other.page.fill("#signup-clinic-code", "not-the-code")
    other.page.click("#signup-form button[type=submit]")
    expect(other.page.locator("#notice")).to_be_visible()
    expect(other.page.locator("#workbench")).to_be_hidden()


# --------------------------------------------------------------------------------------------
# The JavaScript frame encoder against the Python reference (no server needed beyond the page)
# --------------------------------------------------------------------------------------------


def test_javascript_frames_match_the_specification_encoder(open_tab: Any) -> None:
    tab = open_tab("/fever.html")
    tab.page.wait_for_function("window.daozhenFeverCore && window.daozhenFeverCore.ble")
    cases = [
        {"value": 36.7, "unit": "C", "time": None, "site": None},
        {"value": 38.6, "unit": "C", "time": [2024, 1, 2, 3, 4, 5], "site": "axillary"},
        {"value": 101.3, "unit": "F", "time": [2023, 12, 31, 23, 59, 59], "site": "ear"},
        {"value": 35.0, "unit": "C", "time": None, "site": "rectal"},
    ]
    hexes = tab.page.evaluate(
        """cases => cases.map(c => window.daozhenFeverCore.ble.toHex(
             window.daozhenFeverCore.ble.encodeTemperatureFrame({
               value: c.value, unit: c.unit, site: c.site,
               time: c.time ? new Date(c.time[0], c.time[1] - 1, ...c.time.slice(2)) : null,
             })))""",
        cases,
    )
    types = {
        "axillary": TemperatureType.armpit,
        "ear": TemperatureType.tympanum,
        "rectal": TemperatureType.rectum,
    }
    for case, got in zip(cases, hexes, strict=True):
        stamp = datetime(*case["time"]) if case["time"] else None
        expected = encode_temperature_measurement(
            case["value"], case["unit"], stamp, types.get(case["site"]) if case["site"] else None
        )
        assert got == expected.hex(), case
    # A spec vector by hand: 36.7 °C = mantissa 367 (0x00016F), exponent -1 (0xFF), little-endian.
    assert hexes[0] == "006f0100ff"


# --------------------------------------------------------------------------------------------
# Static checks (no browser)
# --------------------------------------------------------------------------------------------


def _used_keys() -> set[str]:
    html = "".join((STATIC / n).read_text(encoding="utf-8") for n in ("fever.html", "clinic.html"))
    js = "".join((STATIC / n).read_text(encoding="utf-8") for n in ("fever.js", "clinic.js"))
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([a-z0-9_]+)"', html))
    used |= set(re.findall(r'\bt[f]?\("([a-z0-9_]+)"', js))
    used |= set(re.findall(r'i18n: "([a-z0-9_]+)"', js))
    return used


def test_every_fever_ui_string_exists_in_zh_and_en() -> None:
    strings = json.loads((STATIC / "i18n_fever.json").read_text(encoding="utf-8"))
    assert set(strings) == {"zh", "en"}
    assert set(strings["zh"]) == set(strings["en"])
    assert all(v.strip() for lang in strings.values() for v in lang.values())
    missing = sorted(k for k in _used_keys() if k not in strings["zh"])
    assert not missing, f"UI strings missing from i18n_fever.json: {missing}"
    # Keys built at run time: sites, colours, conditions of the child form.
    for prefix, names in (
        ("site_", ("axillary", "ear", "forehead", "oral", "rectal")),
        ("colour_", ("green", "orange", "red")),
    ):
        assert all(f"{prefix}{n}" in strings["zh"] for n in names)
    html = (STATIC / "fever.html").read_text(encoding="utf-8")
    for condition in re.findall(r'name="conditions" value="([a-z_]+)"', html):
        assert f"cond_{condition}" in strings["zh"]


def test_fever_static_files_reference_nothing_outside_the_app() -> None:
    for name in ("fever.html", "fever.js", "fever.css", "clinic.html", "clinic.js"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text), name
        assert "@import" not in text and "fonts.googleapis" not in text, name
        assert not re.search(r"url\(\s*[\"']?(?:https?:)?//", text), name
        assert "innerHTML" not in text, f"{name}: server text must be inserted as text"
