"""The ``callbridge`` command line: serve, check-config, demo, sim."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from callbridge import __version__
from callbridge.config import (
    Config,
    config_as_dict,
    default_env_file,
    environ_with_env_file,
    load_config,
    missing_credentials,
)
from callbridge.errors import ConfigError
from callbridge.log import configure_logging, get_logger

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"callbridge {__version__}")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None)
    parser.add_argument("--log-format", choices=("auto", "json", "console"), default=None)
    parser.add_argument(
        "--env-file", type=Path, default=None, help="dotenv file (default: ./.env if present)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument(
        "--config", type=Path, default=None, help="config.toml (default: ./config.toml if present)"
    )

    check = commands.add_parser(
        "check-config", help="print the effective configuration, secrets redacted"
    )
    check.add_argument("--config", type=Path, default=None)

    demo = commands.add_parser(
        "demo", help="a whole translated call against the simulators, offline"
    )
    demo.add_argument("args", nargs=argparse.REMAINDER)

    sim = commands.add_parser("sim", help="run one simulator alone")
    sim.add_argument("which", choices=("twilio", "palabra"))
    sim.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # argparse.REMAINDER right after a subcommand leaves leading options (`demo --out x`)
    # unrecognised; only `demo` takes them, every other command still rejects them.
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        from callbridge.sim.demo import main as demo_main

        demo_argv = [*extra, *args.args]
        return demo_main(demo_argv, log_format=args.log_format, log_level=args.log_level)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "sim":
        return _run_sim(args.which, list(args.args))
    environ = environ_with_env_file(os.environ, args.env_file or default_env_file())
    config_path = args.config or _default_config_path()
    try:
        config = load_config(config_path, environ)
    except ConfigError as exc:
        configure_logging(level="info", fmt=args.log_format or "auto")
        return _report_problems(exc.problems, config_path)
    if args.command == "check-config":
        return _check_config(config, config_path)
    return _serve(config, args.log_level, args.log_format)


def _default_config_path() -> Path | None:
    candidate = Path("config.toml")
    return candidate if candidate.is_file() else None


def _report_problems(problems: list[str], path: Path | None) -> int:
    print(f"callbridge: invalid configuration ({path or 'defaults'}):", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def _check_config(config: Config, path: Path | None) -> int:
    print(json.dumps(config_as_dict(config), indent=2, ensure_ascii=False))
    problems = missing_credentials(config)
    if problems:
        return _report_problems(problems, path)
    print(f"callbridge: configuration OK ({path or 'defaults'})", file=sys.stderr)
    return 0


def _serve(config: Config, level: str | None, fmt: str | None) -> int:
    from callbridge.server import serve

    configure_logging(
        level=level or config.log.level, fmt=fmt or config.log.format, secrets=config.secrets()
    )
    log = get_logger("callbridge.cli")
    problems = missing_credentials(config)
    if problems:
        log.error("config_incomplete", problems=problems)
        return 1
    try:
        trio.run(serve, config)
    except ConfigError as exc:
        log.error("config_invalid", problems=exc.problems)
        return 1
    except OSError as exc:
        log.error("start_failed", error=str(exc), host=config.server.host, port=config.server.port)
        return 1
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
