"""Scenario model of the fake Twilio: who calls, how operators answer, which faults fire.

A scenario is plain JSON (see the package docstring for the full format). Every section and key
is optional; unknown keys are errors so a typo cannot silently change a test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "FAULT_KINDS",
    "OUTCOMES",
    "REST_ENDPOINTS",
    "STREAM_FAULT_KINDS",
    "CallbackOptions",
    "CallerSpec",
    "DtmfSpec",
    "Fault",
    "OperatorSpec",
    "RestDelay",
    "RestError",
    "Scenario",
    "ScenarioError",
    "ScriptOptions",
    "Timing",
    "ToneSpec",
    "load_scenario",
    "scenario_from_dict",
]

OUTCOMES = ("answer", "busy", "no-answer", "failed")
FAULT_KINDS = (
    "bad_signature",
    "missing_signature",
    "abrupt_close",
    "binary_frame",
    "malformed_json",
    "slow_reader",
    "oversized_frame",
)
# The kinds that act on a media stream (the rest act on signatures).
STREAM_FAULT_KINDS = frozenset(
    {"abrupt_close", "binary_frame", "malformed_json", "slow_reader", "oversized_frame"}
)
REST_ENDPOINTS = ("create", "update", "fetch")
SIGNATURE_TARGETS = ("all", "webhooks", "websocket")


class ScenarioError(ValueError):
    """The scenario JSON is malformed; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@attrs.frozen
class ToneSpec:
    """Tone-mode voice: bursts of a party's frequency separated by mu-law silence."""

    on_s: float = 1.2
    off_s: float = 1.8
    start_delay_s: float = 0.3  # silence first, like a person who needs a moment
    level_dbfs: float = -12.0


@attrs.frozen
class CallerSpec:
    from_: str = "+15550100001"
    to: str = "+15550100000"
    start_after_s: float | None = None  # None: wait for POST /_sim/call
    hangup_at_s: float | None = None  # seconds after the call started ringing our number
    hangup_while_operator_rings: bool = False
    hangup_ring_delay_s: float = 0.0  # after the operator's phone starts ringing
    status_callback: str | None = None  # the number's configured StatusCallback (absolute URL)
    voice: str = "tone"  # tone | silence | script
    app_url: str | None = None  # dial this app instead of the simulator's --app-url
    # Keys pressed at each <Gather>, in order ("" = nothing: the Gather times out); past the
    # list the caller presses nothing. Pressed menu_press_delay_s after the Gather's prompts.
    menu_digits: list[str] = attrs.Factory(list)
    menu_press_delay_s: float = 0.5


@attrs.frozen
class DtmfSpec:
    """Keys a party presses during its media stream: ``dtmf`` events, ``at_s`` after the stream
    started, ``gap_s`` apart (e.g. ``"*3"``: switch to the third menu language)."""

    digits: str
    at_s: float = 0.0
    party: str = "caller"
    gap_s: float = 0.3


@attrs.frozen
class OperatorSpec:
    outcome: str = "answer"  # answer | busy | no-answer | failed
    answer_delay_s: float = 1.0  # ringing time before answering; > Timeout means no-answer
    hangup_at_s: float | None = None  # seconds after answering
    voice: str = "tone"


@attrs.frozen
class Fault:
    """One fault switch. Stream faults fire ``at_s`` after the party's stream started; one
    aimed at a call (``call_sid``) and added at runtime while that call's stream is live fires
    ``at_s`` after it was added, on that stream only."""

    kind: str
    party: str | None = None  # caller | operator | None (any)
    call_sid: str | None = None  # stream faults: only this call's streams (None: any call)
    at_s: float = 0.0
    duration_s: float = 1.0  # slow_reader: how long the sim stops reading
    target: str = "all"  # signature faults: all | webhooks | websocket
    times: int | None = None  # signature faults: how many requests (None: all)
    on_hangup: bool = False  # abrupt_close: drop the socket at hang-up instead of at_s
    # oversized_frame: one text message of this many characters (Twilio's own are ~300)
    size_bytes: int = 100_000

    def applies_to(self, party: str, call_sid: str) -> bool:
        """A stream fault meant for ``party``'s stream of call ``call_sid``."""
        return (
            self.kind in STREAM_FAULT_KINDS
            and self.party in (None, party)
            and self.call_sid in (None, call_sid)
        )


@attrs.frozen
class RestError:
    endpoint: str  # create | update | fetch
    status: int = 429
    times: int = 1
    # The request takes effect (the call is created, say) and the error is returned anyway, as
    # a 500 after the work was done, or a reply lost on the way, would look to the app.
    after_acting: bool = False


@attrs.frozen
class RestDelay:
    """A slow REST answer: the request takes effect at once (the call is placed, hung up...),
    and its answer comes ``delay_s`` later, as from a Twilio under load or a slow network. For
    the next ``times`` requests to ``endpoint``."""

    endpoint: str  # create | update | fetch
    delay_s: float = 2.0
    times: int = 1


@attrs.frozen
class CallbackOptions:
    duplicate: bool = False  # deliver every status callback twice
    reorder: bool = False  # swap each pair of consecutive callbacks of a call
    hold_s: float = 1.0  # reorder: how long a callback waits for a successor to overtake it


@attrs.frozen
class Timing:
    say_ms_per_char: float = 60.0
    say_max_s: float = 10.0
    play_nominal_s: float = 2.0  # one loop of <Play>; the URL is recorded, not fetched
    ring_delay_s: float = 0.1  # initiated -> ringing
    busy_delay_s: float = 0.5
    fail_delay_s: float = 0.2
    webhook_timeout_s: float = 15.0  # Twilio's whole-response limit (error 11205)
    stream_connect_timeout_s: float = 10.0
    stop_timeout_s: float = 2.0  # stop + close handshake before the socket is dropped


@attrs.frozen
class ScriptOptions:
    """Script mode: turn-taking rule knobs (see ``conversation.py``)."""

    path: str
    settle_s: float = 0.4  # heard audio this soon after the turn ended is its ducked original
    quiet_s: float = 0.7  # silence that means the listener finished hearing
    translation_wait_s: float = 8.0  # no translation heard by then: go on after quiet_s
    turn_timeout_s: float = 30.0  # hard limit per turn


@attrs.frozen
class Scenario:
    caller: CallerSpec = CallerSpec()
    operators: Mapping[str, OperatorSpec] = attrs.field(factory=dict)
    default_operator: OperatorSpec = OperatorSpec()
    callbacks: CallbackOptions = CallbackOptions()
    rest_errors: tuple[RestError, ...] = ()
    rest_delays: tuple[RestDelay, ...] = ()
    faults: tuple[Fault, ...] = ()
    dtmf: tuple[DtmfSpec, ...] = ()
    timing: Timing = Timing()
    tone: ToneSpec = ToneSpec()
    script: ScriptOptions | None = None
    ended_call_update_code: int = 20404  # REST Status=completed on an ended call: 20404 | 21220
    # False: the phones keep no audio (no WAVs); what a long soak needs, at 60 kB/s per call.
    record_audio: bool = True

    def operator(self, number: str) -> OperatorSpec:
        return self.operators.get(number, self.default_operator)


def load_scenario(path: Path) -> Scenario:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"cannot read scenario {path}: {exc}"
        raise ScenarioError([msg]) from exc
    return scenario_from_dict(data, base_dir=path.parent)


def scenario_from_dict(data: Any, *, base_dir: Path | None = None) -> Scenario:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ScenarioError(["scenario must be a JSON object"])
    known = {
        "caller", "operators", "default_operator", "callbacks", "rest_errors", "rest_delays",
        "faults",
        "timing", "tone", "script", "ended_call_update_code", "dtmf", "record_audio",
    }  # fmt: skip
    problems += [f"unknown key {k!r}" for k in data if k not in known]
    kw: dict[str, Any] = {}
    simple = {
        "caller": CallerSpec,
        "default_operator": OperatorSpec,
        "callbacks": CallbackOptions,
        "timing": Timing,
        "tone": ToneSpec,
    }
    for key, cls in simple.items():
        if key in data:
            kw[key] = _build(cls, data[key], key, problems)
    if "operators" in data:
        ops = data["operators"]
        if isinstance(ops, dict):
            kw["operators"] = {
                n: _build(OperatorSpec, v, f"operators.{n}", problems) for n, v in ops.items()
            }
        else:
            problems.append("operators must be an object keyed by phone number")
    kw["rest_errors"] = tuple(
        _build_list(RestError, data.get("rest_errors", []), "rest_errors", problems)
    )
    kw["rest_delays"] = tuple(
        _build_list(RestDelay, data.get("rest_delays", []), "rest_delays", problems)
    )
    kw["faults"] = tuple(_build_list(Fault, data.get("faults", []), "faults", problems))
    kw["dtmf"] = tuple(_build_list(DtmfSpec, data.get("dtmf", []), "dtmf", problems))
    if data.get("script") is not None:
        script = data["script"]
        if isinstance(script, str):
            script = {"path": script}
        built = _build(ScriptOptions, script, "script", problems)
        if built is not None and base_dir is not None and not Path(built.path).is_absolute():
            built = attrs.evolve(built, path=str(base_dir / built.path))
        kw["script"] = built
    if "ended_call_update_code" in data:
        kw["ended_call_update_code"] = data["ended_call_update_code"]
    if "record_audio" in data:
        if isinstance(data["record_audio"], bool):
            kw["record_audio"] = data["record_audio"]
        else:
            problems.append("record_audio must be true or false")
    scenario = Scenario(**kw) if not problems else None
    if scenario is not None:
        problems += validate_scenario(scenario)
    if problems or scenario is None:
        raise ScenarioError(problems)
    return scenario


def validate_scenario(s: Scenario) -> list[str]:
    problems: list[str] = []
    for number, op in [("default_operator", s.default_operator), *s.operators.items()]:
        if op.outcome not in OUTCOMES:
            problems.append(f"operator {number}: outcome must be one of {OUTCOMES}")
    for f in s.faults:
        if f.kind not in FAULT_KINDS:
            problems.append(f"fault kind {f.kind!r} not in {FAULT_KINDS}")
        if f.target not in SIGNATURE_TARGETS:
            problems.append(f"fault target {f.target!r} not in {SIGNATURE_TARGETS}")
        if f.party not in (None, "caller", "operator"):
            problems.append(f"fault party {f.party!r} must be caller or operator")
        if isinstance(f.size_bytes, bool) or not isinstance(f.size_bytes, int) or f.size_bytes < 1:
            problems.append(f"fault size_bytes {f.size_bytes!r} must be an integer >= 1")
    for e in s.rest_errors:
        if e.endpoint not in REST_ENDPOINTS:
            problems.append(f"rest error endpoint {e.endpoint!r} not in {REST_ENDPOINTS}")
        if not (e.status == 429 or 500 <= e.status <= 599):
            problems.append(f"rest error status {e.status} must be 429 or 5xx")
    for d in s.rest_delays:
        if d.endpoint not in REST_ENDPOINTS:
            problems.append(f"rest delay endpoint {d.endpoint!r} not in {REST_ENDPOINTS}")
        if not isinstance(d.delay_s, int | float) or d.delay_s < 0:
            problems.append(f"rest delay delay_s {d.delay_s!r} must be a number >= 0")
    problems += dtmf_problems(s.dtmf)
    problems += [
        f"caller.menu_digits: {d!r} is not made of keypad keys (0-9 * #)"
        for d in s.caller.menu_digits
        if not isinstance(d, str) or not set(d) <= KEYPAD
    ]
    if s.ended_call_update_code not in (20404, 21220):
        problems.append("ended_call_update_code must be 20404 or 21220")
    return problems


KEYPAD = frozenset("0123456789*#")


def dtmf_problems(specs: tuple[DtmfSpec, ...]) -> list[str]:
    problems: list[str] = []
    for i, spec in enumerate(specs):
        if not isinstance(spec.digits, str) or not spec.digits or not set(spec.digits) <= KEYPAD:
            problems.append(f"dtmf[{i}]: digits must be keypad keys (0-9 * #), got {spec.digits!r}")
        if spec.party not in ("caller", "operator"):
            problems.append(f"dtmf[{i}]: party {spec.party!r} must be caller or operator")
    return problems


def _build(cls: type[Any], data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{where} must be an object")
        return None
    names = {f.name for f in attrs.fields(cls)}
    kw: dict[str, Any] = {}
    for key, value in data.items():
        name = "from_" if key == "from" else key
        if name not in names:
            problems.append(f"{where}: unknown key {key!r}")
            continue
        kw[name] = value
    try:
        return cls(**kw)
    except TypeError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _build_list(cls: type[Any], data: Any, where: str, problems: list[str]) -> list[Any]:
    if not isinstance(data, list):
        problems.append(f"{where} must be a list")
        return []
    built = [_build(cls, item, f"{where}[{i}]", problems) for i, item in enumerate(data)]
    return [b for b in built if b is not None]
