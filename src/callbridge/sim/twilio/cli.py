"""``callbridge sim twilio``: run the fake Twilio as a process.

Prints one JSON line ``{"event": "sim_ready", "url": "http://127.0.0.1:PORT", ...}`` on stdout once
listening. SIGINT/SIGTERM (or ``POST /_sim/shutdown``) hang up live calls, write WAVs to
``--out-dir`` if given, and exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import attrs
import trio

from callbridge.log import configure_logging, get_logger
from callbridge.sim.twilio.scenario import (
    FAULT_KINDS,
    OUTCOMES,
    Fault,
    RestError,
    Scenario,
    ScenarioError,
    ScriptOptions,
    load_scenario,
    validate_scenario,
)
from callbridge.sim.twilio.server import serve_twilio_sim
from callbridge.sim.twilio.sim import SimOptions, TwilioSim

__all__ = ["build_parser", "main", "scenario_from_args"]

log = get_logger("callbridge.sim.twilio.cli")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callbridge sim twilio", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument(
        "--app-url", required=True, help="the app under test, e.g. http://127.0.0.1:8000"
    )
    p.add_argument("--account-sid", required=True)
    p.add_argument("--auth-token", required=True)
    p.add_argument("--scenario", type=Path, help="scenario JSON (flags below override it)")
    p.add_argument("--script", type=Path, help="script mode: conversation script.json")
    p.add_argument("--out-dir", type=Path, help="write {party}-heard.wav/-said.wav here at exit")
    p.add_argument("--call-after", type=float, help="dial the app this many seconds after start")
    p.add_argument("--from", dest="from_", help="caller number")
    p.add_argument("--to", help="our Twilio number (the number the caller dials)")
    p.add_argument("--caller-hangup-at", type=float, help="caller hangs up N s after dialling")
    p.add_argument("--caller-hangup-while-ringing", action="store_true",
                   help="caller hangs up when the operator's phone rings")  # fmt: skip
    p.add_argument("--caller-status-callback", help="the number's status callback URL")
    p.add_argument("--operator-outcome", choices=OUTCOMES)
    p.add_argument("--operator-answer-delay", type=float)
    p.add_argument("--operator-hangup-at", type=float, help="operator hangs up N s after answering")
    p.add_argument("--duplicate-callbacks", action="store_true")
    p.add_argument("--reorder-callbacks", action="store_true")
    p.add_argument("--fault", action="append", default=[], metavar="KIND[:PARTY[:AT_S[:DURATION_S]]]",
                   help=f"kinds: {', '.join(FAULT_KINDS)}; PARTY caller|operator|any")  # fmt: skip
    p.add_argument("--rest-error", action="append", default=[], metavar="ENDPOINT:STATUS[:TIMES]",
                   help="e.g. create:429:2 (endpoints create|update|fetch)")  # fmt: skip
    p.add_argument("--no-recording", action="store_true",
                   help="keep no per-frame recordings (load tests; no WAVs then)")  # fmt: skip
    p.add_argument("--detect-tones", default="", metavar="HZ,HZ,...",
                   help="time the onsets of these tones in what each stream plays (/_sim/stats)")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="json", choices=("auto", "json", "console"))
    return p


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    s = load_scenario(args.scenario) if args.scenario else Scenario()
    caller = {
        "from_": args.from_,
        "to": args.to,
        "start_after_s": args.call_after,
        "hangup_at_s": args.caller_hangup_at,
        "status_callback": args.caller_status_callback,
    }
    caller_kw = {k: v for k, v in caller.items() if v is not None}
    if args.caller_hangup_while_ringing:
        caller_kw["hangup_while_operator_rings"] = True
    if args.script:
        caller_kw["voice"] = "script"
    op = {
        "outcome": args.operator_outcome,
        "answer_delay_s": args.operator_answer_delay,
        "hangup_at_s": args.operator_hangup_at,
    }
    op_kw = {k: v for k, v in op.items() if v is not None}
    callbacks = attrs.evolve(
        s.callbacks,
        duplicate=s.callbacks.duplicate or args.duplicate_callbacks,
        reorder=s.callbacks.reorder or args.reorder_callbacks,
    )
    s = attrs.evolve(
        s,
        caller=attrs.evolve(s.caller, **caller_kw),
        default_operator=attrs.evolve(s.default_operator, **op_kw),
        operators={n: attrs.evolve(o, **op_kw) for n, o in s.operators.items()},
        callbacks=callbacks,
        faults=s.faults + tuple(_parse_fault(f) for f in args.fault),
        rest_errors=s.rest_errors + tuple(_parse_rest_error(r) for r in args.rest_error),
        script=ScriptOptions(str(args.script)) if args.script else s.script,
    )
    problems = validate_scenario(s)
    if problems:
        raise ScenarioError(problems)
    return s


def _parse_fault(text: str) -> Fault:
    parts = text.split(":")
    try:
        party = parts[1] if len(parts) > 1 and parts[1] not in ("", "any") else None
        at_s = float(parts[2]) if len(parts) > 2 else 0.0
        duration = float(parts[3]) if len(parts) > 3 else 1.0
    except ValueError as exc:
        msg = f"--fault {text!r}: {exc}"
        raise ScenarioError([msg]) from exc
    return Fault(kind=parts[0], party=party, at_s=at_s, duration_s=duration)


def _parse_rest_error(text: str) -> RestError:
    parts = text.split(":")
    try:
        return RestError(parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 1)
    except (IndexError, ValueError) as exc:
        msg = f"--rest-error {text!r}: want ENDPOINT:STATUS[:TIMES]"
        raise ScenarioError([msg]) from exc


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(
        level=args.log_level, fmt=args.log_format, secrets=[args.auth_token], stream=sys.stderr
    )
    try:
        scenario = scenario_from_args(args)
    except ScenarioError as exc:
        print(f"callbridge sim twilio: bad scenario: {'; '.join(exc.problems)}", file=sys.stderr)
        return 2
    options = SimOptions(
        app_url=args.app_url.rstrip("/"),
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        scenario=scenario,
        host=args.host,
        port=args.port,
        out_dir=args.out_dir,
        recording=not args.no_recording,
        detect_tones=tuple(float(hz) for hz in args.detect_tones.split(",") if hz.strip()),
    )
    try:
        trio.run(_run, options)
    except KeyboardInterrupt:
        return 130
    return 0


async def _run(options: SimOptions) -> None:
    async with trio.open_nursery() as nursery:
        sim: TwilioSim = await nursery.start(_serve_then_cancel, options, nursery.cancel_scope)
        print(json.dumps({"event": "sim_ready", "url": sim.url, "sim": "twilio"}), flush=True)
        nursery.start_soon(_signals, sim)


async def _serve_then_cancel(
    options: SimOptions,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[TwilioSim] = trio.TASK_STATUS_IGNORED,
) -> None:
    # The server drains and returns after a shutdown request; then the signal watcher goes too.
    await serve_twilio_sim(options, task_status=task_status)
    scope.cancel()


async def _signals(sim: TwilioSim) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("signal", signal=signal.Signals(signum).name)
            sim.shutdown_requested.set()
            return
