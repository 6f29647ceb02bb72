"""The connector's closing handshake and cancellation (real loopback sockets, real clock).

A link that fails cancels its sibling link (and with it the whole call): that sibling must not
sit out ``CLOSE_GRACE_S`` in a handshake whose reply nobody can read any more.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from callbridge.config import load_config
from callbridge.palabra.link import Connector
from callbridge.palabra.transport import CLOSE_GRACE_S, websocket_connector

FAST_S = CLOSE_GRACE_S / 2


async def _echo_until_closed(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed:
        pass


async def _server(nursery: trio.Nursery) -> str:
    server = await nursery.start(serve_websocket, _echo_until_closed, "127.0.0.1", 0, None)
    return f"ws://127.0.0.1:{server.port}/stream"


def _connect() -> Connector:
    return websocket_connector(load_config(None, {}))


async def test_cancel_arriving_during_the_close_handshake_does_not_stall() -> None:
    async with trio.open_nursery() as servers:
        url = await _server(servers)
        connect = _connect()
        closing = trio.Event()
        start = 0.0

        async def failing_link() -> None:
            nonlocal start
            async with connect(url) as ws:
                await ws.send_message("hello")
                start = trio.current_time()
                closing.set()
                msg = "task rejected"  # leaves the body: the closing handshake begins
                raise RuntimeError(msg)

        async def sibling_failure(scope: trio.CancelScope) -> None:
            await closing.wait()
            scope.cancel()  # e.g. the other direction's link failed at the same moment

        with trio.fail_after(10), trio.CancelScope() as call:
            try:
                async with trio.open_nursery() as links:
                    links.start_soon(failing_link)
                    links.start_soon(sibling_failure, call)
            except* RuntimeError:
                pass
        assert trio.current_time() - start < FAST_S
        servers.cancel_scope.cancel()


async def test_cancelled_link_drops_the_socket_at_once() -> None:
    async with trio.open_nursery() as servers:
        url = await _server(servers)
        connect = _connect()
        with trio.fail_after(10):
            with trio.CancelScope() as call:
                async with connect(url) as ws:
                    await ws.send_message("hello")
                    start = trio.current_time()
                    call.cancel()
                    await trio.sleep_forever()
            assert trio.current_time() - start < FAST_S
        servers.cancel_scope.cancel()


async def test_normal_exit_still_closes_cleanly() -> None:
    async with trio.open_nursery() as servers:
        url = await _server(servers)
        with trio.fail_after(10):
            async with _connect()(url) as ws:
                await ws.send_message("hello")
            assert ws.closed is not None and ws.closed.code == 1000
        servers.cancel_scope.cancel()
