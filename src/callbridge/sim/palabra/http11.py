"""A small HTTP/1.1 layer on h11, and the stream plumbing that lets REST and WebSocket share a port.

The front door reads a request head, decides (``Upgrade: websocket``?) and hands the connection,
with the bytes it already read replayed by ``ReplayStream``, either to trio-websocket or to
``serve_http``. Owning the TCP stream is what lets the simulator drop a WebSocket abruptly (no
close frame), which an ASGI server cannot do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "ReplayStream",
    "RequestHead",
    "parse_head",
    "read_head",
    "serve_http",
]

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
HEAD_TIMEOUT_S = 10.0
_RECEIVE_BYTES = 64 * 1024


class ReplayStream(trio.abc.Stream):
    """Wraps a stream, first returning bytes already read from it."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return bytes(await self.inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


@attrs.frozen
class RequestHead:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names

    @property
    def is_websocket(self) -> bool:
        return "websocket" in self.headers.get("upgrade", "").lower()


async def read_head(stream: trio.abc.Stream) -> bytes | None:
    """Bytes up to and including the end of the request head (maybe a little more), or None."""
    buffer = b""
    with trio.move_on_after(HEAD_TIMEOUT_S):
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(4096)
            if not data or len(buffer) + len(data) > MAX_HEAD_BYTES:
                return None
            buffer += data
        return buffer
    return None


def parse_head(buffer: bytes) -> RequestHead | None:
    """Just enough parsing to route; h11 or wsproto does the real work afterwards."""
    head = buffer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return RequestHead(parts[0].upper(), parts[1], headers)


@attrs.frozen
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; repeated headers keep the last value
    body: bytes


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


async def serve_http(stream: trio.abc.Stream, handler: Handler) -> None:
    """Serve requests on one connection (keep-alive) until either side closes it."""
    conn = h11.Connection(h11.SERVER)
    while True:
        try:
            request = await _receive_request(conn, stream)
        except (h11.RemoteProtocolError, _BodyTooLarge):
            await _send_response(conn, stream, HttpResponse(400, b'{"ok":false}'), keep_alive=False)
            return
        if request is None:
            return
        response = await handler(request)
        await _send_response(conn, stream, response, keep_alive=True)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


class _BodyTooLarge(Exception):
    pass


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(_RECEIVE_BYTES)))


async def _receive_request(conn: h11.Connection, stream: trio.abc.Stream) -> HttpRequest | None:
    event = await _next_event(conn, stream)
    if not isinstance(event, h11.Request):
        return None
    body = b""
    while True:
        part = await _next_event(conn, stream)
        if isinstance(part, h11.Data):
            body += part.data
            if len(body) > MAX_BODY_BYTES:
                raise _BodyTooLarge
        elif isinstance(part, h11.EndOfMessage):
            break
        else:
            return None
    split = urlsplit(event.target.decode("latin-1"))
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers
    }
    return HttpRequest(
        event.method.decode().upper(), split.path, parse_qs(split.query), headers, body
    )


async def _send_response(
    conn: h11.Connection, stream: trio.abc.Stream, response: HttpResponse, *, keep_alive: bool
) -> None:
    headers = [("server", "callbridge-palabra-sim")]
    if response.status != 204:
        headers += [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
        ]
    if not keep_alive:
        headers.append(("connection", "close"))
    try:
        reason = HTTPStatus(response.status).phrase.encode()
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if response.status != 204 and response.body:
            data = (data or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError:
        return
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
