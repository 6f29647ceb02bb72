"""Structured logging: one JSON object per line on a pipe, a readable console on a TTY.

Every rendered line passes through a redactor that knows each configured secret value, so a secret
cannot reach the log whatever a caller passes in (an exception text, a URL with ``?token=``, a
header dict). Per-call context (``call_id``) is bound with ``structlog.contextvars``; trio copies
the context into child tasks, so everything a call starts logs with its id.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact_text"]

REDACTED = "***"
# Query parameters that carry credentials in URLs we may log (Palabra's ?token=).
_TOKEN_PARAM = re.compile(r"([?&](?:token|access_token|api_key)=)[^&\s\"']+", re.IGNORECASE)


# A secret this short is a placeholder ("x", "test"): replaced wherever it stood, it would eat
# letters out of every key and word ("webhook" -> "webhoo***"), so it is replaced only where it
# stands alone. Real credentials are far longer (Twilio's auth token is 32 hex digits).
_SHORT_SECRET = 8


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret replaced by ``***``, and credentials in URL query parameters.
    A secret under 8 characters is replaced only where no letter, digit, ``_`` or ``-`` touches
    it."""
    for secret in secrets:
        if len(secret) >= _SHORT_SECRET:
            text = text.replace(secret, REDACTED)
        elif secret:
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", REDACTED, text)
    return _TOKEN_PARAM.sub(r"\1" + REDACTED, text)


class _Redactor:
    """Last processor before output: scrubs the rendered line, not just known keys."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, logger: Any, method: str, line: Any) -> str:
        text = line.decode() if isinstance(line, bytes) else line
        return redact_text(text, self._secrets)


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    return number if isinstance(number, int) else logging.INFO


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once per process (``__main__`` and test fixtures call this)."""
    out = stream if stream is not None else sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    redactor = _Redactor(secrets)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _name_key,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
            redactor,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level_number(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(out, level, renderer, redactor)


def _route_stdlib_logging(out: TextIO, level: str, renderer: Any, redactor: _Redactor) -> None:
    """Libraries that use ``logging`` (quart, hypercorn, httpx) get the same format and redaction,
    so a traceback from a route is one JSON line too, never raw text with a secret in it."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
            redactor,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    # Third-party chatter (httpx request lines) stays out below warning unless debugging.
    root.setLevel(_level_number(level))
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(max(_level_number(level), logging.WARNING))


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, default=str, ensure_ascii=False)


def get_logger(name: str) -> Any:
    """A logger whose lines carry ``logger=name``.

    Lazy: it resolves the configuration at each use, so module-level loggers created before
    ``configure_logging`` still follow it."""
    return structlog.get_logger(logger_name=name)


def _name_key(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # ``get_logger(logger=...)`` clashes with structlog's own parameter, so the name travels as
    # ``logger_name`` and is renamed here.
    if "logger_name" in event:
        event["logger"] = event.pop("logger_name")
    return event
