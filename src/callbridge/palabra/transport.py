"""Opening the Palabra WebSocket: a TCP (or TLS) stream we own, with trio-websocket on top.

trio-websocket 0.12's ``open_websocket_url`` leaves the TCP stream open when the server closes
the WebSocket first, which Palabra always does after ``end_of_stream`` (and on a refused
handshake): one leaked socket per link. Owning the stream ourselves and closing it in ``finally``
makes every exit path release it.
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionTimeout, WebSocketConnection, wrap_client_stream

from callbridge.config import Config

__all__ = ["CLOSE_GRACE_S", "MAX_MESSAGE_BYTES", "default_tls_context", "websocket_connector"]

CLOSE_GRACE_S: Final = 2.0  # the closing handshake may take this long before we drop the socket
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024  # Palabra's 200 ms TTS chunks are ~13 kB


def websocket_connector(
    config: Config,
) -> Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]:
    """The production connector: ``connect(url)`` is an async context manager yielding an open
    ``WebSocketConnection``. Error handling: a timeout raises ``ConnectionTimeout``; a refused
    upgrade ``ConnectionRejected``; network failures ``OSError`` (all of which the link retries)."""
    timeout_s = config.palabra.connect_timeout_s
    tls = default_tls_context()

    def connect(url: str) -> AbstractAsyncContextManager[WebSocketConnection]:
        return _open(url, timeout_s, tls)

    return connect


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """The system's CA bundle, loaded once per process: loading it takes 40-70 ms, and a
    connector is made per link, on the event loop, so per call it cost every other call's audio
    a gap of about 100 ms."""
    return ssl.create_default_context()


@asynccontextmanager
async def _open(
    url: str, timeout_s: float, tls: ssl.SSLContext
) -> AsyncIterator[WebSocketConnection]:
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    host_header = host if port == (443 if secure else 80) else f"{host}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream: trio.abc.Stream | None = None
    try:
        # Shielded only while closing: the handshake needs the reader task (in this nursery) to
        # read the server's reply, so a cancellation arriving meanwhile must not kill it first.
        with trio.CancelScope() as guard:
            async with trio.open_nursery() as nursery:
                with trio.move_on_after(timeout_s) as deadline:
                    if secure:
                        stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=tls)
                    else:
                        stream = await trio.open_tcp_stream(host, port)
                    ws = await wrap_client_stream(
                        nursery, stream, host_header, resource, max_message_size=MAX_MESSAGE_BYTES
                    )
                if deadline.cancelled_caught:
                    raise ConnectionTimeout
                try:
                    yield ws
                finally:
                    # Already cancelled, the reader is gone too: no reply can come, don't wait.
                    if trio.current_effective_deadline() != -math.inf:
                        guard.shield = True
                        with trio.move_on_after(CLOSE_GRACE_S):
                            await ws.aclose()
                    # The reader task waits on the socket until it closes.
                    if stream is not None:
                        await trio.aclose_forcefully(stream)
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
