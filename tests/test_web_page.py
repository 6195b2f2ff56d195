"""The web chat page (server/static) end to end in a real headless Chromium against the real app.

One uvicorn server per module (create_app with the rules-only chat service, data in a temp dir);
each test opens a fresh browser context at phone size (375×667). Chromium is Debian's
/usr/bin/chromium driven by Playwright; it is installed with apt-get when missing (as root),
never with `playwright install`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium_browser, serving

from assistant.settings import Settings

STATIC = Path(__file__).resolve().parent.parent / "server" / "static"
SCREENSHOT = Path("/tmp/daozhen_chat.png")
PHONE = {"width": 375, "height": 667}
TIMEOUT_MS = 20_000
# Level colours from chat.css (--level-*), as the browser reports them.
LEVEL_RGB = {
    "emergency_ambulance": "rgb(122, 0, 0)",
    "emergency": "rgb(198, 40, 40)",
    "urgent": "rgb(184, 74, 0)",
    "routine": "rgb(21, 88, 176)",
    "self_care": "rgb(46, 125, 50)",
}

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


# --------------------------------------------------------------------------------------------
# Chromium, the server and the browser
# --------------------------------------------------------------------------------------------


class _NoRetrievalNeeded:
    """Stands in for the knowledge base: the page needs no vector search (rules-only chat, and
    citations are read from the corpus files by /api/guidelines), so the module skips the build."""

    knowledge_version = "test"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:

    from server.app import create_app
    from server.rules_chat import RulesOnlyChatService

    settings = Settings(data_dir=tmp_path_factory.mktemp("web"), llm_backend="none")
    app = create_app(
        settings,
        chat_service=RulesOnlyChatService(piece_chars=12, piece_delay_s=0.01),  # visibly streamed
        knowledge_loader=lambda _settings: _NoRetrievalNeeded(),
    )
    with serving(app, "daozhen-web-test") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@dataclass
class Tab:
    """A page plus everything it sent and received, for assertions on the wire."""

    page: Any
    base: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.goto(self.base + "/")
        self.wait_online()

    def wait_online(self) -> None:
        self.page.wait_for_selector("#conn-status[data-state=online]", state="attached")

    def say(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.press("#message-input", "Enter")

    def frames(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == kind]

    def wait_done(self, count: int) -> None:
        """Until `count` turns have ended (done or error) and their bubbles are final."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(self.frames("done")) + len(self.frames("error")) < count:
            assert time.monotonic() < deadline, f"only {len(self.frames('done'))} turns ended"
            self.page.wait_for_timeout(50)
        expect(self.page.locator(".msg-bot[aria-busy=true]")).to_have_count(0)


@pytest.fixture
def tab(browser: Any, base_url: str) -> Iterator[Tab]:
    context = browser.new_context(viewport=PHONE, locale="zh-CN", has_touch=True, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page, base_url)

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: tab.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: tab.received.append(json.loads(payload)))

    page.on("websocket", on_socket)
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()
    assert not tab.errors, f"JavaScript errors on the page: {tab.errors}"


def no_horizontal_overflow(page: Any) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


def page_height(page: Any) -> int:
    """The document's scroll height: the page itself must not scroll, only the message log."""
    return int(page.evaluate("document.scrollingElement.scrollHeight"))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_emergency_message_streams_a_dark_red_card_with_120(tab: Tab) -> None:
    page = tab.page
    tab.open()
    banner = page.locator("#safety-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("不是诊断")
    expect(banner).to_contain_text("120")
    expect(banner.locator("a[href='tel:120']")).to_be_visible()

    tab.say("我爸胸口很痛一直出冷汗")
    card = page.locator(".card.level-emergency_ambulance").first
    expect(card).to_be_visible()
    expect(card).to_contain_text("120")
    expect(card.locator("a.call-120[href='tel:120']")).to_be_visible()
    header_colour = card.locator(".card-level").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header_colour == LEVEL_RGB["emergency_ambulance"]
    expect(card.locator(".advice")).not_to_be_empty()
    expect(card.locator(".departments li").first).to_be_visible()
    expect(card.locator(".red-flag-list li").first).to_be_visible()
    expect(card.locator(".care-setting")).not_to_be_empty()
    # The card heading names the level in words, so colour is never the only signal.
    expect(card.locator(".card-level")).to_contain_text("120")

    tab.wait_done(1)
    tokens = tab.frames("token")
    assert len(tokens) > 1, "the reply should arrive as a stream of tokens"
    done = tab.frames("done")[0]
    bubble = page.locator(f".msg-bot[data-message-id='{done['message_id']}'] .reply-text")
    assert bubble.inner_text().strip() == done["text"].strip()
    assert "".join(t["text"] for t in tokens if t["message_id"] == done["message_id"]) == done["text"]
    assert no_horizontal_overflow(page) <= PHONE["width"]

    card.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_english_card_yes_no_buttons_send_an_answer(tab: Tab) -> None:
    page = tab.page
    tab.open()
    page.click(".lang-btn[data-lang=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#send-btn")).to_have_text("Send")
    expect(page.locator("#safety-banner")).to_contain_text("not a diagnosis")
    expect(page.locator(".lang-btn[data-lang=en]")).to_have_attribute("aria-pressed", "true")

    tab.say("my child has a rash")
    card = page.locator(".card").last
    expect(card).to_have_attribute("data-lang", "en")
    expect(card.locator(".departments li").first).to_be_visible()
    expect(card).to_contain_text("Suggested department")
    colour = card.locator(".card-level").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == LEVEL_RGB[card.get_attribute("data-level")]
    assert re.search(r"[A-Za-z]{4}", card.locator(".dept-name").first.inner_text())
    tab.wait_done(1)

    # The engine first asks the age (a number): answered by typing, until a yes/no question comes.
    for _ in range(4):
        if page.locator(".question[data-kind=yes_no] .quick-reply:not(:disabled)").count():
            break
        tab.say("4 years")
        tab.wait_done(len(tab.frames("done")) + 1)
    question_id = page.locator(".question[data-kind=yes_no]").last.get_attribute("data-question-id")
    question = page.locator(f".question[data-question-id='{question_id}']").first  # pinned: more come
    yes = question.locator(".quick-reply[data-value=yes]")
    no = question.locator(".quick-reply[data-value=no]")
    expect(yes).to_have_text("Yes")
    expect(no).to_be_enabled()
    assert no.bounding_box()["height"] >= 44  # a thumb-sized target

    cards_before = page.locator(".card").count()
    turns_before = len(tab.frames("done"))
    no.click()
    expect(page.locator(".card")).to_have_count(cards_before + 1)
    answers = [m for m in tab.sent if m.get("type") == "answer"]
    assert answers and answers[-1] == {"type": "answer", "question_id": question_id, "value": "no"}
    expect(yes).to_be_disabled()  # an answered question cannot be answered again
    expect(page.locator(".msg-user .msg-text").last).to_have_text("No")
    tab.wait_done(turns_before + 1)
    assert page.locator(".card").last.get_attribute("data-lang") == "en"
    assert no_horizontal_overflow(page) <= PHONE["width"]


def test_citation_opens_the_guideline_text(tab: Tab) -> None:
    page = tab.page
    tab.open()
    tab.say("我爸胸口很痛一直出冷汗")
    link = page.locator(".card .citation-link").first
    expect(link).to_be_visible()
    assert link.get_attribute("href").startswith("/api/guidelines/")
    link.click()
    dialog = page.locator("#citation-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#citation-section-title")).not_to_be_empty()
    text = dialog.locator("#citation-text")
    expect(text.locator("p").first).to_be_visible()
    assert len(text.inner_text()) > 80
    expect(dialog.locator("#citation-sources")).to_contain_text("20")  # a guideline year
    assert no_horizontal_overflow(page) <= PHONE["width"]
    page.click("#citation-close")
    expect(dialog).to_be_hidden()


def test_reload_resumes_the_same_session_with_its_cards(tab: Tab) -> None:
    page = tab.page
    tab.open()
    tab.say("孩子发烧两天了")
    expect(page.locator(".card")).to_have_count(1)
    tab.wait_done(1)
    session_id = page.evaluate("localStorage.getItem('daozhen.session_id')")
    assert session_id and session_id == tab.frames("session")[0]["session_id"]

    tab.received.clear()
    page.reload()
    tab.wait_online()
    hello = [m for m in tab.sent if m.get("type") == "hello"][-1]
    assert hello["session_id"] == session_id and hello["protocol"] == "daozhen.chat.v1"
    session = tab.frames("session")[-1]
    assert session["session_id"] == session_id and session["resumed"] is True
    expect(page.locator(".card")).to_have_count(1)  # the card came back from the local transcript
    expect(page.locator(".msg-user .msg-text").first).to_have_text("孩子发烧两天了")
    expect(page.locator(".msg-system", has_text="已恢复")).to_be_visible()

    # Without the local transcript the server's history is shown instead.
    page.evaluate("localStorage.removeItem('daozhen.history')")
    page.reload()
    tab.wait_online()
    expect(page.locator(".msg-user .msg-text").first).to_have_text("孩子发烧两天了")
    expect(page.locator(".msg-bot .reply-text").first).not_to_be_empty()
    # The question the session still waits for can be answered straight away.
    expect(page.locator(".question .quick-reply:not(:disabled)").first).to_be_visible()


def test_dropped_connection_reconnects_to_the_same_session(tab: Tab) -> None:
    page = tab.page
    tab.open()
    tab.say("孩子发烧两天了")
    tab.wait_done(1)
    session_id = tab.frames("session")[0]["session_id"]
    page.evaluate("window.daozhenChat.state.ws.close()")  # as if the network dropped
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "offline")
    tab.wait_online()
    hellos = [m for m in tab.sent if m.get("type") == "hello"]
    assert len(hellos) == 2 and hellos[-1]["session_id"] == session_id
    assert tab.frames("session")[-1]["resumed"] is True
    tab.say("3岁")  # the conversation goes on where it was: the age question is answered
    expect(page.locator(".card")).to_have_count(2)
    tab.wait_done(2)
    assert tab.frames("card")[-1]["card"]["question"] is None or (
        tab.frames("card")[-1]["card"]["question"]["id"] != "age"
    )


def test_unknown_session_starts_a_new_one_and_says_so(tab: Tab) -> None:
    page = tab.page
    tab.open()  # online first, so the page's own session message cannot overwrite what we plant
    page.evaluate(
        """() => {
          localStorage.setItem('daozhen.session_id', 'gone-session-1');
          localStorage.setItem('daozhen.history', JSON.stringify(
            {session_id: 'gone-session-1', items: [{role: 'user', text: '以前的消息'}]}));
        }"""
    )
    page.reload()
    tab.wait_online()
    expect(page.locator(".msg-user .msg-text").first).to_have_text("以前的消息")
    expect(page.locator(".msg-system", has_text="已过期")).to_be_visible()
    expect(page.locator("#notice")).to_be_hidden()  # said once, in the log, not twice
    new_id = page.evaluate("localStorage.getItem('daozhen.session_id')")
    assert new_id and new_id != "gone-session-1"
    tab.say("头痛两天")
    expect(page.locator(".card")).to_have_count(1)


def test_server_errors_are_shown_politely_and_the_chat_goes_on(tab: Tab) -> None:
    page = tab.page
    tab.open()
    page.evaluate("window.daozhenChat.state.ws.send(JSON.stringify({type: 'no_such_type'}))")
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_have_attribute("role", "alert")
    expect(notice).to_have_text("这种消息暂不支持，已忽略。")
    assert tab.frames("error")[0]["code"] == "unknown_type"

    tab.say("头痛两天")  # still usable after the error; sending hides the old notice
    expect(page.locator(".card")).to_have_count(1)
    expect(notice).to_be_hidden()


def test_card_shows_fact_warnings(tab: Tab) -> None:
    page = tab.page
    tab.open()
    tab.say("孩子发烧45度")
    warning = page.locator(".card .warning-list li").first
    expect(warning).to_contain_text("45")
    expect(page.locator(".card .warnings h3")).to_have_text("请核对")


def test_phone_layout_accessibility_and_no_outside_requests(tab: Tab) -> None:
    page = tab.page
    tab.open()
    log = page.locator("#log")
    expect(log).to_have_attribute("role", "log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(page.locator("label[for=message-input]")).to_have_count(1)
    tab.say("x" * 300 + " https://example.invalid/" + "a" * 200)  # long unbroken words must wrap
    tab.say("孩子发烧两天了，39度，还咳嗽")
    tab.wait_done(2)
    assert no_horizontal_overflow(page) <= PHONE["width"]
    assert page_height(page) <= PHONE["height"]
    assert page.locator("#log").evaluate("e => e.scrollHeight > e.clientHeight")  # the log scrolls
    expect(page.locator("#composer")).to_be_in_viewport()
    expect(page.locator("#safety-banner")).to_be_in_viewport()
    for selector in ("#send-btn", ".lang-btn", "#new-chat", ".banner-call"):
        targets = page.locator(selector)
        for i in range(targets.count()):
            box = targets.nth(i).bounding_box()
            assert box and box["height"] >= 44 and box["width"] >= 44, selector
    # New chat clears the conversation and gets a fresh session.
    old_id = page.evaluate("localStorage.getItem('daozhen.session_id')")
    page.click("#new-chat")
    tab.wait_online()
    expect(page.locator(".card")).to_have_count(0)
    assert page.evaluate("localStorage.getItem('daozhen.session_id')") not in (None, old_id)
    outside = [u for u in tab.requests if not u.startswith((tab.base, "data:", "ws://127.0.0.1"))]
    assert not outside, f"the page fetched from outside the app: {outside}"


# --------------------------------------------------------------------------------------------
# Static checks (no browser)
# --------------------------------------------------------------------------------------------


def test_every_ui_string_exists_in_zh_and_en() -> None:
    strings = json.loads((STATIC / "i18n.json").read_text(encoding="utf-8"))
    assert set(strings) == {"zh", "en"}
    assert set(strings["zh"]) == set(strings["en"])
    assert all(v.strip() for lang in strings.values() for v in lang.values())
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    js = (STATIC / "chat.js").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([a-z0-9_]+)"', html))
    used |= set(re.findall(r'\bt\("([a-z0-9_]+)"', js))
    used |= set(re.findall(r'i18n: "([a-z0-9_]+)"', js))
    used |= {m for m in re.findall(r'"((?:answer|level|care_setting|error|status)_[a-z0-9_]+)"', js)}
    missing = sorted(k for k in used if k not in strings["zh"])
    assert not missing, f"UI strings missing from i18n.json: {missing}"
    # Every server error code has a friendly message in both languages.
    from server.errors import MESSAGES

    rest_only = {"body_too_large", "not_found", "not_ready", "auth_required", "invalid_field"}
    assert not [c for c in MESSAGES if c not in rest_only and f"error_{c}" not in strings["zh"]]


def test_static_files_reference_nothing_outside_the_app() -> None:
    for name in ("index.html", "chat.js", "chat.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text), name
        assert "@import" not in text and "fonts.googleapis" not in text, name
        assert not re.search(r"url\(\s*[\"']?(?:https?:)?//", text), name
