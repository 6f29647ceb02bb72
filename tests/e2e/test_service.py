"""The daemon as a systemd service, from a real ``callbridge serve``: the sd_notify sequence on a
datagram socket the test owns, /metrics matching one simulated call, /readyz at max_calls and at
SIGTERM."""

from __future__ import annotations

import os
import secrets
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from callbridge.sim.stack import Stack
from tests.e2e.conftest import (
    StackFactory,
    daemon_event,
    heard_translation_both_ways,
    wait_report,
)

pytestmark = pytest.mark.e2e

WEB_TOKEN = "sim-web-token-for-loopback-only-use"  # StackOptions' default


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """An abstract datagram socket (no path-length limit), as systemd would pass it."""
    name = f"callbridge-e2e-{os.getpid()}-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield "@" + name, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every notification queued on ``sock`` so far, one assignment per item, in order."""
    sock.setblocking(False)
    lines: list[str] = []
    while True:
        try:
            lines += sock.recv(4096).decode().splitlines()
        except BlockingIOError:
            return lines


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = stack.http.get(
        stack.app_url + "/metrics", headers={"Authorization": f"Bearer {WEB_TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def readyz(stack: Stack) -> tuple[int, dict[str, Any]]:
    response = stack.http.get(stack.app_url + "/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


def one_call(stack: Stack) -> dict[str, Any]:
    stack.place_call()
    daemon_event(stack, "call_bridged")
    wait_report(stack, "twilio", heard_translation_both_ways, what="translation heard both ways")
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})
    ended = stack.call_ended()
    assert stack.wait_idle(30)
    return ended


def api_utterances(stack: Stack, call_id: str) -> list[dict[str, Any]]:
    response = stack.http.get(
        f"{stack.app_url}/api/calls/{call_id}", headers={"Authorization": f"Bearer {WEB_TOKEN}"}
    )
    response.raise_for_status()
    utterances: list[dict[str, Any]] = response.json()["utterances"]
    return utterances


def test_metrics_match_one_simulated_call(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    ended = one_call(stack)
    samples = scrape(stack)
    for leg in ("caller", "operator"):
        media = ended["media"][leg]
        label = (("leg", leg),)
        assert samples["callbridge_media_frames_received_total", label] == media["frames_in"]
        assert samples["callbridge_media_frames_sent_total", label] == media["frames_out"]
        assert samples["callbridge_media_frames_dropped_total", label] == media.get(
            "send_dropped", 0
        )
        assert samples["callbridge_media_frames_late_total", label] == media.get(
            "late_originals", 0
        )
    assert samples["callbridge_calls_ended_total", (("reason", "caller_hangup"),)] == 1
    assert samples["callbridge_active_calls", ()] == 0
    # One latency observation per utterance: to its text, and to the listener hearing it all.
    utterances = api_utterances(stack, ended["call_id"])
    for direction in ("caller_to_operator", "operator_to_caller"):
        mine = [u for u in utterances if u["direction"] == direction]
        for stage, field in (("text", "translated_at"), ("played", "played_at")):
            key = (("direction", direction), ("stage", stage))
            expected = sum(1 for u in mine if u["speech_end_at"] and u[field])
            assert expected >= 1, (direction, stage)
            assert samples["callbridge_translation_latency_seconds_count", key] == expected
    # Both directions' Palabra links connected once each; the webhooks were counted by route.
    for direction in ("caller_to_operator", "operator_to_caller"):
        assert samples["callbridge_palabra_connects_total", (("direction", direction),)] == 1
    webhook = (("route", "/twiml/client"), ("status", "200"))
    assert samples["callbridge_http_requests_total", webhook] == 1
    assert samples["callbridge_event_loop_lag_seconds_count", ()] > 0


def test_notify_sequence_readiness_and_drain(
    stack_factory: StackFactory, notify_socket: tuple[str, socket.socket]
) -> None:
    address, sock = notify_socket
    stack = stack_factory(
        daemon_env={
            "NOTIFY_SOCKET": address,
            "WATCHDOG_USEC": "1000000",
            "CALLBRIDGE_SERVER_MAX_CALLS": "1",
            # Long enough that the drain is still running when /readyz is asked.
            "CALLBRIDGE_SERVER_SHUTDOWN_GRACE_S": "60",
        }
    )
    assert readyz(stack) == (200, {"status": "ready"})
    stack.place_call()
    daemon_event(stack, "call_bridged")
    status, body = readyz(stack)
    assert (status, body["reason"]) == (503, "max_calls")
    assert stack.daemon is not None
    stack.daemon.popen.send_signal(signal.SIGTERM)
    daemon_event(stack, "shutting_down")
    status, body = readyz(stack)
    assert (status, body["reason"]) == (503, "draining")
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})
    daemon_event(stack, "stopped")
    assert stack.daemon.popen.wait(timeout=30) == 0

    lines = received(sock)
    first = {key: next(i for i, line in enumerate(lines) if line.startswith(key)) for key in (
        "READY=1", "STATUS=", "WATCHDOG=1", "STOPPING=1", "EXTEND_TIMEOUT_USEC=")}  # fmt: skip
    assert (
        first["READY=1"]
        < first["STATUS="]
        < first["WATCHDOG=1"]
        < first["STOPPING=1"]
        < first["EXTEND_TIMEOUT_USEC="]
    ), lines
    assert lines[first["STATUS="]] == "STATUS=Serving: 0 active call(s) of 1"
    assert "STATUS=Serving: 1 active call(s) of 1" in lines
    # The loop was healthy throughout: pings kept coming during the call, not only at start.
    pings = [i for i, line in enumerate(lines) if line == "WATCHDOG=1"]
    assert len(pings) >= 3
    assert lines[first["EXTEND_TIMEOUT_USEC="]] == "EXTEND_TIMEOUT_USEC=15000000"
