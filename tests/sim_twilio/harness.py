"""A throwaway quart-trio "app under test" for the Twilio simulator, plus a runner for both."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import request, websocket
from quart_trio import QuartTrio
from twilio.request_validator import RequestValidator

from callbridge.sim.twilio import Scenario, SimOptions, TwilioSim, serve_twilio_sim

SID = "AC" + "1" * 32
TOKEN = "sim-token-123"

WsHandler = Callable[["WsConn"], Awaitable[None]]


@attrs.define
class WsConn:
    """The app's side of one media socket."""

    path: str
    signature: str | None
    signature_valid: bool
    received: list[tuple[float, Any]] = attrs.field(factory=list)  # (time.time(), parsed)
    stream_sid: str = ""
    closed_by_sim: bool = False

    async def recv(self) -> Any:
        raw = await websocket.receive()
        try:
            msg = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            msg = raw  # the sim's malformed-JSON fault
        self.received.append((time.time(), msg))
        if isinstance(msg, dict) and msg.get("event") == "start":
            self.stream_sid = msg["streamSid"]
        return msg

    async def recv_until(self, event: str) -> Any:
        while True:
            msg = await self.recv()
            if isinstance(msg, dict) and msg.get("event") == event:
                return msg

    async def send(self, msg: dict[str, Any]) -> None:
        await websocket.send(json.dumps(msg))

    async def send_media(self, data: bytes) -> None:
        payload = base64.b64encode(data).decode()
        await self.send(
            {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
        )

    async def send_mark(self, name: str) -> None:
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    def events(self, name: str) -> list[tuple[float, Any]]:
        return [(t, m) for t, m in self.received if isinstance(m, dict) and m.get("event") == name]


async def echo_until_stop(conn: WsConn) -> None:
    """Default media handler: echo each inbound frame back until stop."""
    await conn.recv_until("start")
    while True:
        msg = await conn.recv()
        if msg.get("event") == "media":
            await conn.send_media(base64.b64decode(msg["media"]["payload"]))
        elif msg.get("event") == "stop":
            return


def stream_twiml(
    base_ws: str, role: str = "caller", *, action: bool = True, after: str = ""
) -> str:
    act = f' action="/twiml/stream-ended/c1/{role}"' if action else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect{act}>'
        f'<Stream url="{base_ws}/media/c1/{role}" statusCallback="/ignored">'
        f'<Parameter name="call_id" value="c1"/><Parameter name="role" value="{role}"/>'
        f"</Stream></Connect>{after}</Response>"
    )


@attrs.define
class FakeApp:
    url: str = ""
    client_twiml: Callable[[FakeApp], str] = lambda app: stream_twiml(app.ws_url)
    action_twiml: str = "<Response><Hangup/></Response>"
    ws_handler: WsHandler = echo_until_stop
    reject_ws: bool = False
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    sockets: list[WsConn] = attrs.field(factory=list)
    got_request: trio.Event = attrs.field(factory=trio.Event)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def of_kind(self, path_prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(path_prefix)]

    def build(self) -> QuartTrio:
        app = QuartTrio("fake_app")
        validator = RequestValidator(TOKEN)

        @app.route("/<path:path>", methods=["POST", "GET"])
        async def any_post(path: str) -> Any:
            form = await request.form
            params = {k: form.get(k) for k in form} if request.method == "POST" else {}
            url = (
                self.url + request.full_path.rstrip("?")
                if request.method == "GET"
                else self.url + request.path
            )
            sig = request.headers.get("X-Twilio-Signature")
            self.requests.append(
                {
                    "path": request.path,
                    "params": params,
                    "query": dict(request.args),
                    "signature": sig,
                    "valid": sig is not None
                    and validator.validate(url, form if request.method == "POST" else {}, sig),
                    "token": request.headers.get("I-Twilio-Idempotency-Token"),
                    "at": time.time(),
                }
            )
            self.got_request.set()
            self.got_request = trio.Event()
            if path.startswith("twiml/client"):
                return self.client_twiml(self), 200, {"Content-Type": "text/xml"}
            if path.startswith("twiml/stream-ended"):
                return self.action_twiml, 200, {"Content-Type": "text/xml"}
            if path.startswith("twiml/"):
                return "<Response><Hangup/></Response>", 200, {"Content-Type": "text/xml"}
            return "", 204

        @app.websocket("/media/<call_id>/<role>")
        async def media(call_id: str, role: str) -> Any:
            sig = websocket.headers.get("X-Twilio-Signature")
            url = self.ws_url + websocket.path
            valid = sig is not None and validator.validate(url, {}, sig)
            if self.reject_ws:
                return "nope", 403
            conn = WsConn(websocket.path, sig, valid)
            self.sockets.append(conn)
            await websocket.accept()
            await self.ws_handler(conn)
            return None

        return app


def _bind() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


@asynccontextmanager
async def running(
    scenario: Scenario | None = None, app: FakeApp | None = None, **options: Any
) -> AsyncIterator[tuple[TwilioSim, FakeApp]]:
    """The simulator (``SimOptions`` fields in ``options``) and the fake app, both serving."""
    app = app or FakeApp()
    sock = _bind()
    app.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.detach()}"]
    hc.accesslog = hc.errorlog = None
    hc.graceful_timeout = 0.2
    stop_app = trio.Event()
    async with _both(scenario, app, hc, stop_app, options) as both:
        yield both


@asynccontextmanager
async def _both(
    scenario: Scenario | None,
    app: FakeApp,
    hc: HypercornConfig,
    stop_app: trio.Event,
    options: dict[str, Any],
) -> AsyncIterator[tuple[TwilioSim, FakeApp]]:
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(hypercorn_serve, app.build(), hc, shutdown_trigger=stop_app.wait)
        )
        sim_options = SimOptions(app.url, SID, TOKEN, scenario or Scenario(), **options)
        sim: TwilioSim = await nursery.start(serve_twilio_sim, sim_options)
        try:
            yield sim, app
        finally:
            sim.shutdown_requested.set()
            stop_app.set()
