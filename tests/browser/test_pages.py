"""The transcript pages in real headless Chromium against a real server."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from callbridge.records import CallRecord, EndReason
from callbridge.roles import Direction

from ..transcripts.helpers import TOKEN, event
from .conftest import LiveServer

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def screenshot(page: Any, name: str) -> None:
    """Refresh docs/screenshots only when asked (UPDATE_SCREENSHOTS=1), so a test run does
    not dirty the tree."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def new_call(call_id: str = "demo-call-1", **changes: object) -> CallRecord:
    record = CallRecord(
        id=call_id,
        caller_sid="CA0123",
        caller_number="+15550001111",
        caller_language="en",
        operator_language="es",
        received_at=time.time() - 75,
    )
    record.operator_sid, record.operator_number = "CA0456", "+15550002222"
    record.status, record.answered_at = "connected", time.time() - 64
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def login(page: Any, server: LiveServer, path: str = "/calls") -> None:
    page.goto(server.url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#token", TOKEN)
    page.click("#login-submit")
    expect(page).to_have_url(server.url + path)


def say(
    server: LiveServer, call_id: str, uid: str, direction: Direction, source: str, translation: str
) -> None:
    now = time.time()
    src, dst = ("en", "es") if direction is Direction.CALLER_TO_OPERATOR else ("es", "en")
    server.publish(
        event(
            "final", uid, source, call_id=call_id, direction=direction, language=src, ts=now - 1.2
        )
    )
    server.publish(
        event(
            "translation",
            uid,
            translation,
            call_id=call_id,
            direction=direction,
            language=dst,
            ts=now - 0.4,
        )
    )
    server.publish(
        event("played", uid, call_id=call_id, direction=direction, ts=now, played_at=now)
    )


def test_wrong_token_is_refused(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/calls")
    page.fill("#token", "not-the-token")
    with page.expect_response(lambda r: r.url.endswith("/login")) as response:
        page.click("#login-submit")
    assert response.value.status == 401
    expect(page.locator("#login-error")).to_have_text("Wrong token.")
    assert page.request.get(server.url + "/api/calls").status == 401
    cookies = page.context.cookies()
    assert not any(c["name"] == "callbridge_session" for c in cookies)


def test_live_call_partial_then_final(page: Any, server: LiveServer) -> None:
    login(page, server)
    expect(page.locator("#conn")).to_have_text("live")
    server.call_updated(new_call())
    card = page.locator("#active li")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("CONNECTED".lower())
    first = card.locator(".duration").inner_text()
    expect(card.locator(".duration")).not_to_have_text(first, timeout=3000)  # it ticks
    earlier = new_call("earlier-call", received_at=time.time() - 900, caller_number="+15550003333")
    earlier.answered_at, earlier.ended_at = time.time() - 890, time.time() - 600
    earlier.status, earlier.end_reason = "ended", EndReason.CALLER_HANGUP
    server.call_updated(earlier)
    expect(page.locator("#recent li")).to_have_count(1)
    expect(page.locator("#recent li")).to_contain_text("caller_hangup")
    expect(card).to_have_count(1)
    screenshot(page, "calls.png")

    card.locator("a").click()
    expect(page).to_have_url(server.url + "/calls/demo-call-1")
    expect(page.locator("#status")).to_have_text("connected")
    expect(page.locator("#conn")).to_have_text("live")

    c2o = Direction.CALLER_TO_OPERATOR
    server.publish(event("partial", "u1", "Hello, I", call_id="demo-call-1", direction=c2o))
    utt = page.locator("#utterances li")
    original = utt.locator(".orig .text")
    expect(original).to_have_text("Hello, I")
    expect(original).to_have_class(re.compile(r"\bpartial\b"))
    server.publish(
        event("partial", "u1", "Hello, I need a doctor", call_id="demo-call-1", direction=c2o)
    )
    expect(original).to_have_text("Hello, I need a doctor")
    expect(utt).to_have_count(1)  # updated in place

    spoke = time.time()
    server.publish(
        event(
            "final", "u1", "Hello, I need a doctor.", call_id="demo-call-1", direction=c2o, ts=spoke
        )
    )
    expect(original).to_have_text("Hello, I need a doctor.")
    expect(original).not_to_have_class(re.compile(r"\bpartial\b"))
    translation = utt.locator(".tr .text")
    expect(translation).to_have_class(re.compile(r"\bpartial\b"))
    server.publish(
        event("translation_partial", "u1", "Hola, necesito", call_id="demo-call-1", direction=c2o)
    )
    expect(translation).to_have_text("Hola, necesito")
    server.publish(
        event(
            "translation",
            "u1",
            "Hola, necesito un médico.",
            call_id="demo-call-1",
            direction=c2o,
            ts=spoke + 0.85,
        )
    )
    expect(translation).to_have_text("Hola, necesito un médico.")
    expect(translation).not_to_have_class(re.compile(r"\bpartial\b"))
    expect(utt.locator(".latency")).to_have_text("850 ms")
    expect(utt.locator(".orig .lang")).to_have_text("EN")
    expect(utt.locator(".tr .lang")).to_have_text("ES")
    server.publish(
        event("played", "u1", call_id="demo-call-1", direction=c2o, played_at=spoke + 1.4)
    )
    expect(utt.locator(".played")).to_contain_text("played")

    say(
        server,
        "demo-call-1",
        "u2",
        Direction.OPERATOR_TO_CALLER,
        "¿Cuál es su dirección?",
        "What is your address?",
    )
    expect(utt).to_have_count(2)
    expect(utt.nth(1)).to_have_class(re.compile(r"speaker-operator"))
    server.publish(event("partial", "u3", "It's 12 Main", call_id="demo-call-1", direction=c2o))
    expect(utt).to_have_count(3)
    screenshot(page, "call.png")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "call-phone.png")


def test_auto_scroll_stops_when_the_reader_scrolls_up(page: Any, server: LiveServer) -> None:
    page.set_viewport_size({"width": 800, "height": 400})
    server.call_updated(new_call())
    for i in range(12):
        say(server, "demo-call-1", f"u{i}", Direction.CALLER_TO_OPERATOR, f"line {i}", f"línea {i}")
    login(page, server, "/calls/demo-call-1")
    expect(page.locator("#utterances li")).to_have_count(12)
    say(server, "demo-call-1", "u12", Direction.CALLER_TO_OPERATOR, "line 12", "línea 12")
    expect(page.locator("#utterances li")).to_have_count(13)
    page.wait_for_function(
        "window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 5"
    )
    page.evaluate("window.scrollTo(0, 0)")
    say(server, "demo-call-1", "u13", Direction.CALLER_TO_OPERATOR, "line 13", "línea 13")
    expect(page.locator("#utterances li")).to_have_count(14)
    expect(page.locator("#jump")).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    page.click("#jump")
    page.wait_for_function(
        "window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 5"
    )


def test_xss_attempt_is_rendered_as_text(page: Any, server: LiveServer) -> None:
    server.call_updated(new_call(caller_number=XSS, end_reason=XSS))
    say(server, "demo-call-1", "x1", Direction.CALLER_TO_OPERATOR, XSS, XSS)
    login(page, server)
    expect(page.locator("#active li .parties")).to_contain_text(XSS)
    page.goto(server.url + "/calls/demo-call-1")
    expect(page.locator("#utterances .orig .text")).to_have_text(XSS)
    expect(page.locator("#utterances .tr .text")).to_have_text(XSS)
    server.publish(event("partial", "x2", XSS, call_id="demo-call-1"))
    expect(page.locator("#utterances li")).to_have_count(2)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#utterances img, #utterances script").count() == 0


def test_page_reconnects_after_a_daemon_restart_with_history(page: Any, server: LiveServer) -> None:
    server.call_updated(new_call())
    say(
        server,
        "demo-call-1",
        "u1",
        Direction.CALLER_TO_OPERATOR,
        "Before the restart.",
        "Antes del reinicio.",
    )
    login(page, server, "/calls/demo-call-1")
    expect(page.locator("#utterances li")).to_have_count(1)
    expect(page.locator("#conn")).to_have_text("live")

    server.stop()
    expect(page.locator("#conn")).to_have_text("reconnecting…")
    server.start()  # same port, same state directory: a restarted daemon

    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    # The new process never saw this call: the page now shows it from the store.
    expect(page.locator("#status")).to_have_text("ended")
    expect(page.locator("#end-reason")).to_contain_text("interrupted")
    expect(page.locator("#utterances li")).to_have_count(1)
    expect(page.locator("#utterances .orig .text")).to_have_text("Before the restart.")
    expect(page.locator("#utterances .tr .text")).to_have_text("Antes del reinicio.")

    # And the live feed works again for a call of the new process.
    server.call_updated(new_call("after-restart"))
    page.goto(server.url + "/calls")
    expect(page.locator("#active li")).to_have_count(1)
    expect(page.locator("#recent li")).to_have_count(1)
