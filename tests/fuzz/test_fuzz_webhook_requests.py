"""Fuzzing whole webhook requests through the app: the body caps, the form parser and the
signature check together never fail with a 5xx, and nothing unsigned gets through."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlencode

import structlog.testing
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from quart_trio import QuartTrio

from callbridge.app import create_app
from callbridge.calls.session import CallDeps
from callbridge.calls.supervisor import CallSupervisor
from callbridge.routing import LanguageOperatorPool
from callbridge.services import Services
from callbridge.telephony.signature import SignatureChecker
from tests.calls.fakes import FakeControl, FakeLinks, FakeSink
from tests.calls.harness import make_config

from .conftest import examples
from .strategies import wire_text

PATHS = (
    "/twiml/client",
    "/twiml/operator/abc",
    "/twilio/status/abc/operator",
    "/twiml/stream-ended/abc/caller",
    "/login",
)
CONTENT_TYPES = (
    b"application/x-www-form-urlencoded",
    b"application/x-www-form-urlencoded; charset=utf-8",
    b"multipart/form-data; boundary=x",
    b"multipart/form-data",
    b"text/plain",
)
latin1 = st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[bytes]]:
    """A POST with any body (random bytes, or a real-looking form), cut into any chunks, and any
    mix of signature, content type and (right, wrong or junk) Content-Length headers."""
    kind = draw(st.sampled_from(["form", "bytes", "big"]))
    if kind == "form":
        body = urlencode(draw(st.lists(st.tuples(wire_text, wire_text), max_size=30))).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=2_000))
    else:  # a small pattern repeated past the caps (drawing 40 kB byte by byte is slow)
        pattern = draw(st.binary(min_size=1, max_size=8) | st.just(b"a&"))
        body = pattern * draw(st.integers(1, 40_000 // len(pattern)))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        headers.append((b"x-twilio-signature", draw(latin1)))
    if draw(st.booleans()):
        headers.append((b"content-type", draw(st.sampled_from(CONTENT_TYPES) | latin1)))
    length = draw(st.sampled_from(["right", "wrong", "junk", "none"]))
    if length == "right":
        headers.append((b"content-length", str(len(body)).encode()))
    elif length == "wrong":
        headers.append((b"content-length", str(draw(st.integers(0, 10**9))).encode()))
    elif length == "junk":
        headers.append((b"content-length", draw(latin1)))
    path = draw(st.sampled_from(PATHS))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": draw(st.sampled_from([b"", b"a=1"])),
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.5", 1234),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    return scope, chunks


async def answer(scope: dict[str, Any], chunks: list[bytes]) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    quart_app, services = APP
    with trio.fail_after(30):
        await quart_app(scope, receive, send)  # type: ignore[arg-type]  # a dict scope, as ASGI servers pass
    return int(sent[0]["status"]), services.supervisor.active_count


def build() -> tuple[QuartTrio, Services]:
    """The app ``create_app`` builds, once for every example. Its call supervisor is never
    started: a request that got as far as admitting a call would fail loudly (a 500)."""
    config = make_config()
    deps = CallDeps(
        config, FakeControl(), FakeLinks(), FakeSink(), LanguageOperatorPool.from_config(config)
    )
    services = Services(
        config,
        None,  # type: ignore[arg-type]  # no REST client: the fakes answer
        CallSupervisor(deps),
        FakeSink(),  # type: ignore[arg-type]  # a recording sink stands in for the hub
        SignatureChecker(config),
        Counter(),
    )
    return create_app(services), services


APP = build()


@settings(max_examples=examples(ci=100, fuzz_share=0.2))
@given(requests())
def test_no_webhook_request_gets_a_5xx_or_starts_a_call(
    request: tuple[dict[str, Any], list[bytes]],
) -> None:
    scope, chunks = request
    with structlog.testing.capture_logs():  # thousands of refusals: keep them off the terminal
        status, active_calls = trio.run(answer, scope, chunks)
    assert status < 500, status
    assert active_calls == 0  # nothing unsigned was admitted
    if scope["path"] != "/login":
        assert status in (400, 403, 404, 405, 408, 413, 415), status
