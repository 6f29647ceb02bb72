"""RequestLimits: hostile form posts are refused before the app reads or parses them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import quart.formparser
import trio
from structlog.testing import capture_logs

from callbridge.request_limits import (
    BODY_TIMEOUT_S,
    LOGIN_LIMIT,
    WEBHOOK_LIMIT,
    RequestLimits,
    limit_for,
)
from tests.calls.harness import make_config
from tests.telephony.webhook_app import INCOMING, build_app, post, sign

HOSTILE_BYTES = 16 * 1024 * 1024  # the reported attack: 16 MB ...
HOSTILE_CHUNK = b"a&" * 32 * 1024  # ... of tiny fields, in hypercorn-sized (64 KiB) chunks
SIGNATURE = [(b"x-twilio-signature", b"c2lnbmVk")]


@attrs.define
class Wire:
    """One request as an ASGI server hands it over, counting what the app side pulls."""

    chunks: Iterator[bytes]
    bytes_read: int = 0
    receives: int = 0
    sent: list[dict[str, Any]] = attrs.Factory(list)
    stall: bool = False

    async def receive(self) -> Any:  # an ASGI event
        self.receives += 1
        if self.stall:
            await trio.sleep_forever()
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.disconnect"}
        self.bytes_read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: Any) -> None:  # an ASGI event
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


def body_of(data: bytes, chunk: int = 1000) -> Iterator[bytes]:
    """A body in ``chunk``-byte pieces (``FinalChunk`` flags the last one as the end)."""
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    yield from pieces


def hostile_body() -> Iterator[bytes]:
    for _ in range(HOSTILE_BYTES // len(HOSTILE_CHUNK)):
        yield HOSTILE_CHUNK


def scope(
    path: str = "/twiml/client",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "POST",
) -> Any:  # an ASGI scope
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": SIGNATURE if headers is None else headers,
        "client": ("203.0.113.9", 4242),
    }


@attrs.define
class RecordingApp:
    """The wrapped app: records each call and the body it could read."""

    bodies: list[bytes] = attrs.Factory(list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        if scope["type"] == "http":
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
        self.bodies.append(body)


class FinalChunk(Wire):
    """A wire whose last chunk says ``more_body: False``, as a complete request does."""

    async def receive(self) -> Any:  # an ASGI event
        message = await super().receive()
        if message["type"] == "http.request":
            nxt = next(self.chunks, None)
            if nxt is None:
                message["more_body"] = False
            else:
                self.chunks = iter([nxt, *self.chunks])
        return message


def limits(require_signature: bool = True) -> tuple[RequestLimits, RecordingApp, Counter[str]]:
    app, counters = RecordingApp(), Counter[str]()
    return RequestLimits(app, require_signature=require_signature, counters=counters), app, counters


class TestRefusedBeforeReading:
    async def test_missing_signature_is_403_without_reading_the_body(self) -> None:
        """An unsigned webhook never gets its body read: no receive() at all."""
        middleware, app, counters = limits()
        wire = Wire(hostile_body())
        with capture_logs() as logs:
            await middleware(scope(headers=[]), wire.receive, wire.send)
        assert wire.status == 403 and wire.receives == 0 and not app.bodies
        assert counters == {"bad_signature": 1}
        assert logs[0]["event"] == "signature_rejected"
        assert logs[0]["present"] is False and logs[0]["remote"] == "203.0.113.9"

    async def test_declared_length_over_the_cap_is_413_without_reading(self) -> None:
        middleware, app, counters = limits()
        wire = Wire(hostile_body())
        headers = [*SIGNATURE, (b"content-length", str(HOSTILE_BYTES).encode())]
        await middleware(scope(headers=headers), wire.receive, wire.send)
        assert wire.status == 413 and wire.receives == 0 and not app.bodies
        assert counters == {"body_too_large": 1}
        assert dict(wire.sent[0]["headers"])[b"connection"] == b"close"

    async def test_hostile_16mb_post_stops_at_the_cap_and_is_never_parsed(self) -> None:
        """The reported attack, streamed with no Content-Length: refused after reading no more
        than the cap plus one transport chunk, and the app (and its form parser) never runs."""
        middleware, app, counters = limits()
        wire = Wire(hostile_body())
        await middleware(scope(), wire.receive, wire.send)
        assert wire.status == 413 and not app.bodies
        assert wire.bytes_read <= WEBHOOK_LIMIT.max_bytes + len(HOSTILE_CHUNK)
        assert counters == {"body_too_large": 1}

    async def test_many_fields_under_the_byte_cap_are_refused(self) -> None:
        middleware, app, counters = limits()
        data = b"&".join(b"f%d=" % n for n in range(WEBHOOK_LIMIT.max_fields + 1))
        assert len(data) < WEBHOOK_LIMIT.max_bytes
        wire = FinalChunk(body_of(data, chunk=100))
        with capture_logs() as logs:
            await middleware(scope(), wire.receive, wire.send)
        assert wire.status == 413 and not app.bodies
        assert counters == {"too_many_fields": 1}
        assert logs[0]["event"] == "request_refused" and logs[0]["reason"] == "too_many_fields"

    async def test_unparseable_content_length_is_400(self) -> None:
        middleware, _, counters = limits()
        wire = Wire(iter(()))
        await middleware(
            scope(headers=[*SIGNATURE, (b"content-length", b"-1")]), wire.receive, wire.send
        )
        assert wire.status == 400 and wire.receives == 0
        assert counters == {"bad_content_length": 1}

    async def test_a_body_that_never_finishes_is_408(self, autojump_clock: Any) -> None:
        middleware, app, counters = limits()
        wire = Wire(iter(()), stall=True)
        start = trio.current_time()
        await middleware(scope(), wire.receive, wire.send)
        assert wire.status == 408 and not app.bodies
        assert trio.current_time() - start == pytest.approx(BODY_TIMEOUT_S)
        assert counters == {"body_timeout": 1}

    async def test_a_client_gone_mid_body_gets_nothing(self) -> None:
        middleware, app, counters = limits()
        wire = Wire(body_of(b"a=1&b=2", chunk=3))  # more_body stays True, then disconnect
        await middleware(scope(), wire.receive, wire.send)
        assert wire.sent == [] and not app.bodies and not counters

    async def test_login_is_capped_at_a_few_kib_without_a_signature(self) -> None:
        middleware, app, counters = limits()
        ok = FinalChunk(body_of(b"token=abc&next=%2Fcalls"))
        await middleware(scope("/login", headers=[]), ok.receive, ok.send)
        assert app.bodies == [b"token=abc&next=%2Fcalls"]
        big = FinalChunk(body_of(b"x" * (LOGIN_LIMIT.max_bytes + 1)))
        await middleware(scope("/login", headers=[]), big.receive, big.send)
        assert big.status == 413 and counters == {"body_too_large": 1}


class TestPassedThrough:
    async def test_a_webhook_within_the_caps_reaches_the_app_whole(self) -> None:
        middleware, app, counters = limits()
        data = b"CallSid=CA1&From=%2B1555&" + b"Geo=&" * 40 + b"To=%2B1666"
        wire = FinalChunk(body_of(data, chunk=7))
        await middleware(scope(), wire.receive, wire.send)
        assert app.bodies == [data] and not counters and wire.sent == []

    async def test_signatures_off_leaves_a_missing_signature_to_the_app(self) -> None:
        middleware, app, _ = limits(require_signature=False)
        wire = FinalChunk(body_of(b"CallSid=CA1"))
        await middleware(scope(headers=[]), wire.receive, wire.send)
        assert app.bodies == [b"CallSid=CA1"]

    @pytest.mark.parametrize(
        ("method", "path", "expected"),
        [
            ("POST", "/twiml/client", WEBHOOK_LIMIT),
            ("POST", "/twilio/status/abc/operator", WEBHOOK_LIMIT),
            ("POST", "/login", LOGIN_LIMIT),
            ("POST", "/logout", LOGIN_LIMIT),
            ("GET", "/twiml/client", None),
            ("GET", "/api/calls", None),
            ("POST", "/api/calls", None),
        ],
    )
    def test_which_requests_are_capped(self, method: str, path: str, expected: Any) -> None:
        assert limit_for(method, path, require_signature=True) == expected

    async def test_websockets_and_other_routes_are_untouched(self) -> None:
        middleware, app, counters = limits()
        wire = Wire(iter(()))
        socket_scope: Any = {"type": "websocket", "path": "/media/x/caller"}
        await middleware(socket_scope, wire.receive, wire.send)
        await middleware(scope("/api/calls", headers=[], method="GET"), wire.receive, wire.send)
        assert len(app.bodies) == 2 and wire.sent == [] and not counters


class TestThroughTheApp:
    """The real app, with the middleware that ``create_app`` installs."""

    @pytest.fixture
    async def app(self, nursery: trio.Nursery) -> Any:
        async for built in build_app(nursery, make_config()):
            yield built

    async def test_the_hostile_post_never_reaches_the_form_parser(
        self, app: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        quart_app, services, _ = app
        parsed: list[int] = []
        real_parse_qsl = quart.formparser.parse_qsl  # type: ignore[attr-defined]

        def spy(text: str, **kwargs: Any) -> Any:
            parsed.append(len(text))
            return real_parse_qsl(text, **kwargs)

        monkeypatch.setattr(quart.formparser, "parse_qsl", spy)
        wire = Wire(hostile_body())
        full = {**scope(), "asgi": {}, "http_version": "1.1", "scheme": "http"}
        full |= {"raw_path": b"/twiml/client", "query_string": b"", "root_path": ""}
        await quart_app(full, wire.receive, wire.send)
        assert wire.status == 413
        assert wire.bytes_read <= WEBHOOK_LIMIT.max_bytes + len(HOSTILE_CHUNK)
        assert parsed == [] and services.supervisor.active_count == 0
        # A genuine webhook right after is parsed and admitted as usual.
        response = await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        assert response.status_code == 200 and parsed and services.supervisor.active_count == 1
        health = await (await quart_app.test_client().get("/healthz")).get_json()
        assert health["rejected"] == {"body_too_large": 1}

    async def test_unsigned_webhook_is_refused_by_the_middleware(self, app: Any) -> None:
        quart_app, services, _ = app
        with capture_logs() as logs:
            response = await post(quart_app, "/twiml/client", INCOMING, None)
        assert response.status_code == 403
        assert services.counters == {"bad_signature": 1}
        assert [e["event"] for e in logs] == ["signature_rejected"]
        assert logs[0]["route"] == "/twiml/client"

    async def test_quart_caps_every_other_body(self, app: Any) -> None:
        quart_app, _, _ = app
        assert quart_app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
        assert quart_app.config["MAX_FORM_PARTS"] == LOGIN_LIMIT.max_fields
