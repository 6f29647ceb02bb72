"""End-to-end fixtures: the real daemon and both simulators as processes on loopback.

Tests are plain (synchronous) functions: ``Stack`` talks to the processes over HTTP and collects
their JSON log lines in reader threads, so there is nothing for trio to run here. Every wait is
on an event (a log line, a report condition) with a generous deadline, never a fixed sleep: the
tests run in real time on busy 2-core CI machines.

Helpers live here (plain functions, importable as ``tests.e2e.conftest``) so every e2e module
shares one vocabulary: ``daemon_event``, ``wait_report``, ``call_of``, ``assert_apology``, ...
"""

from __future__ import annotations

import json
import time
import wave
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from twilio.request_validator import RequestValidator

from callbridge.config import PromptsConfig
from callbridge.sim.stack import AUTH_TOKEN, Stack, StackOptions

__all__ = [
    "APOLOGY",
    "FAST_PALABRA",
    "StackFactory",
    "assert_apology",
    "assert_hung_up_by_daemon",
    "call_of",
    "calls_of",
    "daemon_event",
    "daemon_events",
    "healthz",
    "heard_translation_both_ways",
    "marks_heard",
    "rest_updates",
    "rms_dbfs",
    "signature",
    "wait_report",
    "wav_pcm",
    "webhooks_of",
]

# Generous: a loaded 2-core machine can stall a process for seconds.
EVENT_TIMEOUT_S = 30.0
# Palabra answers fast so calls bridge quickly (the default is a realistic second or more).
FAST_PALABRA = ("--ready-delay-s", "0.3")
APOLOGY = PromptsConfig().apology["en"]

StackFactory = Callable[..., Stack]


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[StackFactory]:
    """``make(scenario=None, name=None, **StackOptions fields) -> Stack`` (started).

    ``scenario``: a Twilio simulator scenario (dict), written to the work directory and passed
    as ``--scenario``. ``palabra_args`` default to a fast-ready Palabra. Every stack is closed
    at teardown (SIGTERM, then SIGKILL), and its log directory is printed for failed tests.
    """
    stacks: list[Stack] = []

    def make(
        *, scenario: Mapping[str, Any] | None = None, name: str | None = None, **options: Any
    ) -> Stack:
        workdir = tmp_path / (name or f"stack{len(stacks)}")
        workdir.mkdir(parents=True, exist_ok=True)
        twilio_args = list(options.pop("twilio_args", ()))
        if scenario is not None:
            path = workdir / "scenario.json"
            path.write_text(json.dumps(scenario), encoding="utf-8")
            twilio_args += ["--scenario", str(path)]
        options.setdefault("palabra_args", FAST_PALABRA)
        stack = Stack(StackOptions(workdir=workdir, twilio_args=twilio_args, **options))
        stacks.append(stack)
        print(f"e2e stack logs: {workdir}")  # shown with the failure report
        stack.start()
        return stack

    yield make
    for stack in stacks:
        stack.close()


# ---- the daemon's log -----------------------------------------------------------------------------


def _matches(record: Mapping[str, Any], event: str, fields: Mapping[str, Any]) -> bool:
    return record.get("event") == event and all(record.get(k) == v for k, v in fields.items())


def daemon_event(
    stack: Stack, event: str, timeout_s: float = EVENT_TIMEOUT_S, **fields: Any
) -> dict[str, Any]:
    """The daemon's first log record named ``event`` whose fields equal ``fields``."""
    assert stack.daemon is not None
    return stack.daemon.wait_for(lambda r: _matches(r, event, fields), timeout_s)


def daemon_events(stack: Stack, event: str, **fields: Any) -> list[dict[str, Any]]:
    """Every daemon log record named ``event`` (so far) whose fields equal ``fields``.

    "So far" is what the reader thread has seen: a line the daemon wrote a moment ago may not be
    there yet. Use it after waiting for a later line, or use ``daemon_events_when``."""
    assert stack.daemon is not None
    return [r for r in stack.daemon.events(event) if _matches(r, event, fields)]


def daemon_events_when(
    stack: Stack, event: str, count: int, timeout_s: float = EVENT_TIMEOUT_S, **fields: Any
) -> list[dict[str, Any]]:
    """The daemon's log records named ``event`` with ``fields``, once there are ``count``."""
    assert stack.daemon is not None
    matched: list[dict[str, Any]] = []

    def enough(record: dict[str, Any]) -> bool:
        if _matches(record, event, fields):
            matched.append(record)
        return len(matched) >= count

    stack.daemon.wait_for(enough, timeout_s)
    return matched


# ---- simulator reports ----------------------------------------------------------------------------


def wait_report(
    stack: Stack,
    which: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout_s: float = EVENT_TIMEOUT_S,
    what: str = "condition",
) -> dict[str, Any]:
    """Poll a simulator's report until ``predicate`` holds; returns that report."""
    deadline = time.monotonic() + timeout_s
    while True:
        report: dict[str, Any] = stack.report(which)
        if predicate(report):
            return report
        if time.monotonic() > deadline:
            msg = f"{which} report: {what} not reached within {timeout_s} s"
            raise TimeoutError(msg)
        time.sleep(0.1)


def calls_of(report: Mapping[str, Any], party: str) -> list[dict[str, Any]]:
    """The Twilio simulator's calls of one party (``caller`` or ``operator``), oldest first."""
    return [c for c in report["calls"] if c["party"] == party]


def call_of(report: Mapping[str, Any], sid: str) -> dict[str, Any]:
    (call,) = [c for c in report["calls"] if c["sid"] == sid]
    return dict(call)


# ---- what the carrier saw (Twilio simulator report) --------------------------------------------


def marks_heard(report: Mapping[str, Any], party: str, after: float = 0.0) -> int:
    """Translated utterances (``u:`` marks) ``party`` heard to their end (the mark came back),
    optionally only those finished after wall time ``after``."""
    return sum(
        1
        for s in report["streams"]
        if s["party"] == party
        for m in s["marks"]
        if m["name"].startswith("u:") and m["echoed_at"] is not None and m["echoed_at"] > after
    )


def heard_translation_both_ways(report: Mapping[str, Any]) -> bool:
    """Both listeners heard at least one translated utterance to its end: the media path and
    both translators worked."""
    return marks_heard(report, "caller") >= 1 and marks_heard(report, "operator") >= 1


def rest_updates(report: Mapping[str, Any], sid: str) -> list[dict[str, Any]]:
    """REST updates (hang-up, cancel, new TwiML) the daemon sent for one call, in order."""
    return [
        r for r in report["rest"] if r["endpoint"] == "update" and r["path"].endswith(sid + ".json")
    ]


def webhooks_of(report: Mapping[str, Any], sid: str, kind: str) -> list[dict[str, Any]]:
    return [w for w in report["webhooks"] if w["call_sid"] == sid and w["kind"] == kind]


def assert_hung_up_by_daemon(
    report: Mapping[str, Any], sid: str, status: str = "completed"
) -> None:
    """The daemon ended this leg through REST (``Status=<status>``) and the carrier obeyed."""
    call = call_of(report, sid)
    updates = [u for u in rest_updates(report, sid) if u["form"].get("Status") == [status]]
    assert updates and updates[-1]["status"] == 200, rest_updates(report, sid)
    assert call["end_reason"] == f"rest_{status}" and call["status"] == status, call


def assert_apology(report: Mapping[str, Any], caller_sid: str, text: str = APOLOGY) -> None:
    """The caller heard ``text`` after the daemon replaced their TwiML by REST, then was hung
    up by that TwiML (not by the carrier or a REST hang-up)."""
    updates = [u for u in rest_updates(report, caller_sid) if "Twiml" in u["form"]]
    assert updates and updates[-1]["status"] == 200, rest_updates(report, caller_sid)
    assert text in updates[-1]["form"]["Twiml"][0]
    said = [e for e in report["parties"]["caller"]["events"] if e["kind"] == "say"]
    assert said[-1]["text"] == text and said[-1]["at"] >= updates[-1]["at"]
    caller = call_of(report, caller_sid)
    assert [v["verb"] for v in caller["verbs"]][-2:] == ["Say", "Hangup"], caller
    assert caller["status"] == "completed" and caller["end_reason"] == "twiml_end"


def healthz(stack: Stack) -> dict[str, Any]:
    response = stack.http.get(stack.app_url + "/healthz")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# ---- signing and audio ----------------------------------------------------------------------------


def signature(url: str, params: Mapping[str, str] | None = None) -> str:
    """X-Twilio-Signature as Twilio computes it, with the stack's auth token."""
    sig: str = RequestValidator(AUTH_TOKEN).compute_signature(url, dict(params or {}))
    return sig


def wav_pcm(path: Path) -> np.ndarray[Any, np.dtype[np.int16]]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def rms_dbfs(pcm: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    if len(pcm) == 0:
        return -200.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return 20 * float(np.log10(max(rms, 1e-9) / 32768))
