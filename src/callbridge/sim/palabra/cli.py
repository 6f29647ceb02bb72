"""``callbridge sim palabra``: run the fake Palabra server alone.

Prints one JSON line ``{"event": "sim_ready", "url": "http://127.0.0.1:PORT", ...}`` on stdout
once listening; logs go to stderr. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import orjson
import trio

from callbridge.log import configure_logging, get_logger
from callbridge.sim.palabra.app import RunningSim, serve_palabra_sim
from callbridge.sim.palabra.faults import FaultPlan
from callbridge.sim.palabra.options import SimOptions
from callbridge.sim.palabra.script import DEFAULT_SCRIPT, ScriptError

__all__ = ["build_parser", "main", "options_from_args"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callbridge sim palabra", description=__doc__.splitlines()[0])
    d = SimOptions()
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port, help="0 = a free port")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="K",
        help=f"accepted API key, repeatable (default {d.api_keys[0]})",
    )
    p.add_argument("--client-id", default=d.client_id)
    p.add_argument("--client-secret", default=d.client_secret)
    p.add_argument(
        "--script",
        nargs="?",
        const=str(DEFAULT_SCRIPT),
        default=None,
        metavar="PATH",
        help="script mode (no PATH: the bundled demo conversation); default tone mode",
    )
    p.add_argument("--ready-delay-s", type=float, default=d.ready_delay_s)
    p.add_argument("--idle-timeout-s", type=float, default=d.idle_timeout_s)
    p.add_argument("--double-encode", action="store_true", help="send data as a JSON string")
    p.add_argument(
        "--legacy-readiness",
        action="store_true",
        help="no task_status; get_task answers NOT_FOUND until ready",
    )
    p.add_argument("--queue-status-interval-s", type=float, default=d.queue_status_interval_s)
    p.add_argument("--translation-delay-s", type=float, default=d.translation_delay_s)
    p.add_argument("--tts-delay-s", type=float, default=d.tts_delay_s)
    p.add_argument("--output-speedup", type=float, default=d.output_speedup)
    p.add_argument("--output-burst-chunks", type=int, default=d.output_burst_chunks)
    p.add_argument("--vad-threshold-dbfs", type=float, default=d.vad_threshold_dbfs)
    p.add_argument("--min-speech-s", type=float, default=d.min_speech_s)
    p.add_argument("--partial-interval-s", type=float, default=d.partial_interval_s)
    p.add_argument("--too-fast-lead-s", type=float, default=d.too_fast_lead_s)
    p.add_argument("--too-slow-lag-s", type=float, default=d.too_slow_lag_s)
    p.add_argument("--stall-after-s", type=float, default=d.stall_after_s)
    p.add_argument(
        "--detect-language",
        default=d.detect_language,
        metavar="LANG",
        help="what an auto source is detected as, if the task allows it (default %(default)s)",
    )
    faults = p.add_argument_group("faults (counts: next N times, -1 = always)")
    faults.add_argument("--session-5xx", type=int, default=0, metavar="N")
    faults.add_argument("--reject-task", type=int, default=0, metavar="N")
    faults.add_argument("--wrong-token", type=int, default=0, metavar="N")
    faults.add_argument("--drop-after-s", type=float, default=None, metavar="T")
    faults.add_argument("--drop-count", type=int, default=1, metavar="N")
    faults.add_argument("--stall-output", action="store_true")
    faults.add_argument("--drop-mid-speech", type=int, default=0, metavar="N")
    faults.add_argument("--drop-mid-speech-chunks", type=int, default=3, metavar="K")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    return p


def options_from_args(args: argparse.Namespace) -> SimOptions:
    return SimOptions(
        host=args.host,
        port=args.port,
        api_keys=tuple(args.api_keys) if args.api_keys else SimOptions().api_keys,
        client_id=args.client_id,
        client_secret=args.client_secret,
        script_path=Path(args.script) if args.script else None,
        ready_delay_s=args.ready_delay_s,
        idle_timeout_s=args.idle_timeout_s,
        double_encode=args.double_encode,
        legacy_readiness=args.legacy_readiness,
        queue_status_interval_s=args.queue_status_interval_s,
        translation_delay_s=args.translation_delay_s,
        tts_delay_s=args.tts_delay_s,
        output_speedup=args.output_speedup,
        output_burst_chunks=args.output_burst_chunks,
        vad_threshold_dbfs=args.vad_threshold_dbfs,
        min_speech_s=args.min_speech_s,
        partial_interval_s=args.partial_interval_s,
        too_fast_lead_s=args.too_fast_lead_s,
        too_slow_lag_s=args.too_slow_lag_s,
        stall_after_s=args.stall_after_s,
        detect_language=args.detect_language,
        faults=FaultPlan(
            session_5xx=args.session_5xx,
            reject_task=args.reject_task,
            wrong_token=args.wrong_token,
            drop_after_s=args.drop_after_s,
            drop_count=args.drop_count,
            stall_output=args.stall_output,
            drop_mid_speech=args.drop_mid_speech,
            drop_mid_speech_chunks=args.drop_mid_speech_chunks,
        ),
    )


async def _run(options: SimOptions) -> None:
    async with trio.open_nursery() as nursery:
        sim: RunningSim = await nursery.start(serve_palabra_sim, options)
        ready = {"event": "sim_ready", "url": sim.url, "ws_url_template": sim.ws_url_template}
        sys.stdout.write(orjson.dumps(ready).decode() + "\n")
        sys.stdout.flush()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(level=args.log_level, fmt=args.log_format, stream=sys.stderr)
    log = get_logger("callbridge.sim.palabra")
    options = options_from_args(args)
    try:
        trio.run(_run, options)
    except ScriptError as exc:
        log.error("sim_script_invalid", error=str(exc))
        return 2
    except OSError as exc:
        log.error("sim_listen_failed", error=str(exc))
        return 1
    return 0
