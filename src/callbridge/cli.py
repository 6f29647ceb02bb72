"""The ``callbridge`` command line: serve, check-config, demo, sim (``callbridge --help``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from callbridge import __version__
from callbridge.audio import load_hold_audio
from callbridge.config import (
    Config,
    config_as_dict,
    default_env_file,
    environ_with_env_file,
    load_config,
    missing_credentials,
)
from callbridge.config_summary import summary_lines
from callbridge.errors import ConfigError
from callbridge.log import configure_logging, get_logger

__all__ = ["build_parser", "main"]


DESCRIPTION = """\
Real-time phone call translation: Twilio Media Streams <-> Palabra AI speech-to-speech.

Try it offline first:  callbridge demo
Check a setup:         callbridge check-config --config config.toml
Run the daemon:        callbridge serve --config config.toml
"""

EPILOG = """\
Global options go before the command (callbridge --log-level debug serve).
Exit status: 0 done, 1 failed at run time, 2 bad command line or configuration.
Documentation: README.md and docs/ in the source tree (docs/operations.md runs it as a service).
"""

# Exit statuses: argparse already uses 2 for a bad command line; a bad configuration is the
# same kind of mistake (the invocation, not the run), so systemd's RestartPreventExitStatus=2
# stops a unit that can never start instead of restarting it in a loop.
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbridge",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "config.toml (default: ./config.toml if present, else built-in defaults)"
    serve = commands.add_parser(
        "serve", help="run the daemon", description="Run the daemon until SIGTERM or Ctrl-C."
    )
    serve.add_argument("--config", type=Path, default=None, metavar="PATH", help=config_help)
    check = commands.add_parser(
        "check-config",
        help="check the configuration and credentials, as serve would",
        description="Load the configuration exactly as serve would, report every problem, "
        "and summarise what serve would use (exit 0 if serve could start, 2 if not).",
    )
    check.add_argument("--config", type=Path, default=None, metavar="PATH", help=config_help)
    check.add_argument(
        "--json",
        action="store_true",
        help="print the whole effective configuration as JSON (secrets shown as ***)",
    )
    # The demo parses its own options: `callbridge demo --help` shows them.
    demo = commands.add_parser(
        "demo", help="play one translated call offline (callbridge demo --help)", add_help=False
    )
    demo.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    sim = commands.add_parser("sim", help="run one simulator alone (callbridge sim twilio --help)")
    sim.add_argument("which", choices=("twilio", "palabra"), help="which simulator")
    sim.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"callbridge {__version__}")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="overrides log.level",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=None,
        help="overrides log.format (auto: JSON when stdout is not a terminal)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="dotenv file read into the environment (default: ./.env if present)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # argparse.REMAINDER right after a subcommand leaves leading options (`demo --out x`)
    # unrecognised; only `demo` and `sim` take them, every other command still rejects them.
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        from callbridge.sim.demo import main as demo_main

        demo_argv = [*extra, *args.args]
        return demo_main(demo_argv, log_format=args.log_format, log_level=args.log_level)
    if args.command == "sim":
        return _run_sim(args.which, [*extra, *args.args])
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    environ = environ_with_env_file(os.environ, args.env_file or default_env_file())
    config_path = args.config or _default_config_path()
    try:
        config = load_config(config_path, environ)
    except ConfigError as exc:
        return _report_problems(exc.problems, config_path, "invalid configuration")
    if args.command == "check-config":
        return _check_config(config, config_path, as_json=args.json)
    return _serve(config, config_path, args.log_level, args.log_format)


def _default_config_path() -> Path | None:
    candidate = Path("config.toml")
    return candidate if candidate.is_file() else None


def _report_problems(problems: list[str], path: Path | None, what: str) -> int:
    print(f"callbridge: {what} ({path or 'defaults'}):", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_USAGE


def start_problems(config: Config) -> list[str]:
    """What stops ``serve`` before it listens, checked alike by ``check-config``: missing
    credentials, and a ``media.hold_audio`` file that cannot be used (read here as ``serve``
    reads it at start)."""
    problems = missing_credentials(config)
    try:
        load_hold_audio(config.media.hold_audio)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def _check_config(config: Config, path: Path | None, *, as_json: bool) -> int:
    """Problems first (stderr); then the summary, or the whole configuration with ``--json``."""
    if as_json:
        print(json.dumps(config_as_dict(config), indent=2, ensure_ascii=False))
    problems = start_problems(config)
    if problems:
        return _report_problems(problems, path, "serve cannot start")
    if not as_json:
        print("\n".join(summary_lines(config, path)))
    print(f"callbridge: configuration OK ({path or 'defaults'})", file=sys.stderr)
    return 0


def _serve(config: Config, path: Path | None, level: str | None, fmt: str | None) -> int:
    from callbridge.server import serve

    problems = start_problems(config)
    if problems:
        return _report_problems(problems, path, "serve cannot start")
    configure_logging(
        level=level or config.log.level, fmt=fmt or config.log.format, secrets=config.secrets()
    )
    log = get_logger("callbridge.cli")
    try:
        trio.run(serve, config)
    except ConfigError as exc:
        log.error("config_invalid", problems=exc.problems)
        return EXIT_USAGE
    except OSError as exc:
        log.error("start_failed", error=str(exc), host=config.server.host, port=config.server.port)
        return EXIT_FAILED
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        log.warning("interrupted")
        return 130
    return 0


def _run_sim(which: str, argv: list[str]) -> int:
    if which == "twilio":
        from callbridge.sim.twilio.cli import main as twilio_main

        return twilio_main(argv)
    from callbridge.sim.palabra.cli import main as palabra_main

    return palabra_main(argv)
