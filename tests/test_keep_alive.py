"""``IdleKeepAlive``: hypercorn's keep-alive timeout closes an idle HTTP/1.1 connection to a
Quart-Trio app (without the wrapper it never did: ``callbridge.keep_alive``). Real sockets on
127.0.0.1, so real time: the timeout is 0.3 s and the wait for the close is bounded by 20 s (the
bare app is given ten times the timeout to show it never closes)."""

from __future__ import annotations

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework
from quart_trio import QuartTrio

from callbridge.keep_alive import IdleKeepAlive

KEEP_ALIVE_S = 0.3
CLOSED_WITHIN_S = 20.0


def quart_app() -> QuartTrio:
    app = QuartTrio("keep-alive-test")

    @app.get("/")
    async def root() -> str:
        return "ok"

    return app


async def idle_connection_closed(app: ASGIFramework, within_s: float) -> bool:
    """Serve ``app``, make one keep-alive request, then wait up to ``within_s`` for the server
    to hang up."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.accesslog = None
    closed = False
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        port = int(binds[0].rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        received = b""
        with trio.move_on_after(within_s):
            while True:
                data = await stream.receive_some()
                if not data:
                    closed = True
                    break
                received += data
        await stream.aclose()
        assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"ok")
        nursery.cancel_scope.cancel()
    return closed


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrapped", "bare"])
async def test_an_idle_keep_alive_connection_is_closed(wrapped: bool) -> None:
    app: ASGIFramework = quart_app()
    if wrapped:
        assert await idle_connection_closed(IdleKeepAlive(app), CLOSED_WITHIN_S)
    else:
        # The fault the wrapper exists for; if this starts failing, hypercorn or quart-trio
        # fixed it and the wrapper can go.
        assert not await idle_connection_closed(app, 10 * KEEP_ALIVE_S)
