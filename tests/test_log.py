"""Structured logs: JSON lines with the agreed keys, and no secret ever reaches the output."""

from __future__ import annotations

import io
import json

import structlog

from callbridge.config import load_config
from callbridge.log import configure_logging, get_logger
from tests.test_config import SEED_ENV

SECRETS = [
    SEED_ENV["TWILIO_AUTH_TOKEN"],
    SEED_ENV["PALABRA_CLIENT_ID"],
    SEED_ENV["PALABRA_CLIENT_SECRET"],
    "pk_live_api_key_123456",
    "web-token-abcdef-0123456789-abcdef",
]


def capture(secrets: list[str]) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=secrets, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_ts_level_event_logger_and_bound_context() -> None:
    stream = capture([])
    structlog.contextvars.bind_contextvars(call_id="c-1")
    get_logger("callbridge.test").info("call_started", operators=2)
    [line] = lines(stream)
    assert line["event"] == "call_started"
    assert line["level"] == "info"
    assert line["logger"] == "callbridge.test"
    assert line["call_id"] == "c-1"
    assert line["operators"] == 2
    assert str(line["ts"]).endswith("Z")


def test_level_filters_lower_levels() -> None:
    stream = io.StringIO()
    configure_logging(level="warning", fmt="json", stream=stream)
    log = get_logger("x")
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_no_secret_value_ever_appears_whatever_is_logged() -> None:
    config = load_config(
        None, {**SEED_ENV, "PALABRA_API_KEY": SECRETS[3], "CALLBRIDGE_WEB_TOKEN": SECRETS[4]}
    )
    assert set(config.secrets()) == set(SECRETS)
    stream = capture(config.secrets())
    log = get_logger("callbridge.test")
    for secret in SECRETS:
        log.info(
            f"event mentioning {secret}",
            value=secret,
            nested={"headers": {"Authorization": secret}},
        )
        log.warning(
            "url", url=f"wss://host/stream?token={secret}&x=1", items=[secret, secret[::-1]]
        )
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            log.exception("boom")
    log.info("config", config=repr(config))
    output = stream.getvalue()
    assert output.count("\n") == 3 * len(SECRETS) + 1
    for secret in SECRETS:
        assert secret not in output
    assert "***" in output


def test_token_query_parameters_are_redacted_even_when_unknown() -> None:
    stream = capture([])
    get_logger("x").info("connect", url="wss://h/p?token=unregistered-token-value")
    assert "unregistered-token-value" not in stream.getvalue()


def test_library_logging_is_json_and_redacted_too() -> None:
    import logging

    stream = capture(SECRETS)
    try:
        raise ValueError(f"handler crashed holding {SECRETS[0]}")
    except ValueError:
        logging.getLogger("quart.app").exception(
            "Exception on request POST /twiml/client %s", SECRETS[1]
        )
    [line] = lines(stream)
    assert line["logger"] == "quart.app"
    assert line["level"] == "error"
    assert "ValueError" in str(line["exception"])
    for secret in SECRETS:
        assert secret not in stream.getvalue()


def test_a_placeholder_secret_is_scrubbed_where_it_stands_without_eating_other_words() -> None:
    """`TWILIO_AUTH_TOKEN=x PALABRA_API_KEY=k` used to turn `twilio_webhook` into
    `twilio_webhoo***` and `max_calls` into `ma***_calls`."""
    stream = capture(["k", "x"])
    get_logger("t").info(
        "listening", twilio_webhook_url="http://h/twiml/client", max_calls=10, token="k", key="x"
    )
    [line] = lines(stream)
    assert line["twilio_webhook_url"] == "http://h/twiml/client"
    assert line["max_calls"] == 10
    assert line["token"] == "***" and line["key"] == "***"


def test_a_long_secret_is_scrubbed_even_inside_other_text() -> None:
    stream = capture(["pk_live_api_key_123456"])
    get_logger("t").info("failed", error="auth=xpk_live_api_key_123456y")
    [line] = lines(stream)
    assert "pk_live_api_key_123456" not in json.dumps(line)
