"""What ``check-config`` and ``serve`` tell a person about a configuration, in a few lines.

The URL to paste into the Twilio console is the one thing everybody needs: the number's voice
webhook ("A call comes in", HTTP POST) is ``{public_url}/twiml/client``
(https://www.twilio.com/docs/usage/webhooks/voice-webhooks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from callbridge.config import Config
from callbridge.telephony.twiml import http_url

__all__ = ["INCOMING_CALL_PATH", "metrics_url", "summary_lines", "twilio_webhook_url"]

INCOMING_CALL_PATH: Final = "/twiml/client"


def twilio_webhook_url(config: Config) -> str:
    """The voice webhook URL for the Twilio number (method POST)."""
    return http_url(config.public_url, INCOMING_CALL_PATH)


def metrics_url(config: Config) -> str | None:
    """Where ``/metrics`` is served, or ``None`` when nowhere (no web token, no listener)."""
    if config.metrics.listen:
        host, _, port = config.metrics.listen.rpartition(":")
        return f"http://{host or '127.0.0.1'}:{port}/metrics"
    if config.server.web_token:
        return http_url(config.public_url, "/metrics")
    return None


def summary_lines(config: Config, path: Path | None) -> list[str]:
    """``check-config``'s summary: where the settings came from and what ``serve`` will use."""
    palabra = config.palabra
    auth = "API key" if palabra.api_key else "client id + secret (legacy sessions)"
    pages = (
        f"{http_url(config.public_url, '/calls')} (log in with CALLBRIDGE_WEB_TOKEN)"
        if config.server.web_token
        else "off (set CALLBRIDGE_WEB_TOKEN to turn them on)"
    )
    metrics = metrics_url(config)
    if metrics and not config.metrics.listen:
        metrics += " (Authorization: Bearer CALLBRIDGE_WEB_TOKEN)"
    return [
        f"callbridge configuration: {path or 'built-in defaults'}, plus the environment",
        f"  Twilio voice webhook: POST {twilio_webhook_url(config)}",
        "    (paste it into the number's 'A call comes in' field in the Twilio console)",
        f"  public URL:           {config.public_url}",
        f"  listens on:           {config.server.host}:{config.server.port},"
        f" at most {config.server.max_calls} calls",
        f"  languages:            caller {config.languages.caller},"
        f" operator {config.languages.operator}",
        f"  operators:            {', '.join(config.operators.numbers) or 'none'}",
        f"  Palabra:              {auth}",
        f"  transcript store:     {Path(config.server.state_dir) / 'transcripts.sqlite3'}",
        f"  transcript pages:     {pages}",
        f"  metrics:              {metrics or 'off (set CALLBRIDGE_WEB_TOKEN or metrics.listen)'}",
    ]
