"""The simulator server: REST and WebSocket on one port, started with ``serve_palabra_sim``.

Each TCP connection is routed by its first request head: ``Upgrade: websocket`` goes to
trio-websocket (``/streaming-api/{any}/v1/speech-to-speech/stream``, token checked before the
handshake is accepted: 403 if wrong, 404 for another path); anything else is plain HTTP (``rest``).
"""

from __future__ import annotations

import re
import time
from functools import partial
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
import trio_websocket

from callbridge.log import get_logger
from callbridge.sim.palabra.auth import check_ws_token
from callbridge.sim.palabra.connection import PalabraConnection
from callbridge.sim.palabra.faults import Faults
from callbridge.sim.palabra.http11 import ReplayStream, parse_head, read_head, serve_http
from callbridge.sim.palabra.options import SimOptions
from callbridge.sim.palabra.report import ConnectionReport
from callbridge.sim.palabra.rest import handle_rest
from callbridge.sim.palabra.script import DemoScript
from callbridge.sim.palabra.state import SimState

__all__ = ["RunningSim", "serve_palabra_sim"]

log = get_logger("callbridge.sim.palabra")

WS_PATH = re.compile(r"/streaming-api/[A-Za-z0-9_.~-]+/v1/speech-to-speech/stream")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # input payloads go up to 512 KB of audio (base64 + JSON)


@attrs.frozen
class RunningSim:
    """What ``serve_palabra_sim`` reports once it listens."""

    url: str  # http://127.0.0.1:PORT
    port: int
    state: SimState

    @property
    def ws_url_template(self) -> str:
        return f"{self.state.ws_base}/streaming-api/{{random_hash}}/v1/speech-to-speech/stream"


async def serve_palabra_sim(
    options: SimOptions, *, task_status: trio.TaskStatus[RunningSim] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled.

    Resource handling: the listeners and every connection live in this function's nursery;
    cancelling the caller's scope closes them all.

    Error handling: a failing connection is logged and closed; it never stops the server. A bad
    ``script_path`` raises ``ScriptError`` before anything listens.
    """
    script = DemoScript.load(options.script_path) if options.script_path is not None else None
    listeners = await trio.open_tcp_listeners(options.port, host=options.host)
    port = int(listeners[0].socket.getsockname()[1])
    url = f"http://{options.host}:{port}"
    state = SimState(options, Faults.from_plan(options.faults), script, url)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, partial(_serve_stream, state), listeners)
        log.info("sim_listening", url=url, mode="script" if script else "tone")
        task_status.started(RunningSim(url, port, state))


async def _serve_stream(state: SimState, stream: trio.SocketStream) -> None:
    try:
        await _route(state, stream)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, trio_websocket.ConnectionClosed):
        pass  # the peer went away mid-request: nothing to answer
    except* Exception as group:
        log.exception("sim_connection_failed", errors=len(group.exceptions))
    finally:
        await trio.aclose_forcefully(stream)


async def _route(state: SimState, stream: trio.SocketStream) -> None:
    head_bytes = await read_head(stream)
    if head_bytes is None:
        return
    head = parse_head(head_bytes)
    if head is None:
        return
    replay = ReplayStream(stream, head_bytes)
    if head.is_websocket:
        await _serve_websocket(state, stream, replay)
    else:
        await serve_http(replay, partial(handle_rest, state))


async def _serve_websocket(state: SimState, raw: trio.SocketStream, replay: ReplayStream) -> None:
    async with trio.open_nursery() as nursery:
        request = await trio_websocket.wrap_server_stream(
            nursery, replay, max_message_size=MAX_MESSAGE_BYTES
        )
        target = urlsplit(request.path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if not WS_PATH.fullmatch(target.path):
            state.reject_upgrade(target.path, 404, "unknown path", time.time())
            await request.reject(404, body=b"Not Found")
        else:
            token = parse_qs(target.query).get("token", [None])[0]
            auth = check_ws_token(token, headers, state.options, state.sessions)
            if state.faults.take_wrong_token() or auth is None:
                reason = "no token" if not token else "invalid token"
                state.reject_upgrade(target.path, 403, reason, time.time())
                log.info("sim_ws_rejected", path=target.path, reason=reason)
                await request.reject(403, body=b"Forbidden")
            else:
                ws = await request.accept()
                report = ConnectionReport(
                    state.next_connection_id(), target.path, auth.mode, time.time(), auth.session_id
                )
                state.connections.append(report)
                log.info("sim_ws_connected", connection=report.id, auth_mode=auth.mode)
                await PalabraConnection(state, ws, raw, report).run()
        nursery.cancel_scope.cancel()
