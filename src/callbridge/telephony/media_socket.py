"""``WS /media/<call>/<role>``: a Twilio Media Stream, served as a raw ASGI WebSocket.

Media carries 100 messages a second per call, so this route skips the web framework: it speaks
ASGI to hypercorn directly (``MediaRoute`` sits in front of the Quart app and passes everything
else through). The call's receive task reads hypercorn's own bounded queue of received messages
(``MediaLeg.receive``), and the handler's writer drains the call's outbound queue into the socket.

The upgrade is checked before it is accepted: a bad ``X-Twilio-Signature`` is refused with 403, an
unknown call or party with 404, a leg the call does not expect with 409, each with a JSON body
(ASGI's WebSocket denial response), a warning and a counter. Only then is the upgrade accepted
and the leg handed to the call, so a call never holds a leg whose upgrade failed.

Resource handling: the handler returns (and hypercorn closes the socket) when the call closes the
leg; when Twilio closes the socket, the call's receive task sees ``LegClosed`` and ends the call,
which closes the leg.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Final, Protocol

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
    WebsocketScope,
)

from callbridge.log import get_logger
from callbridge.roles import Role
from callbridge.telephony.legs import Inbound, LegClosed, MediaLeg
from callbridge.telephony.signature import SignatureChecker

__all__ = ["MEDIA_PATH", "MediaCalls", "MediaRoute", "serve_media_socket"]

log = get_logger("callbridge.media_socket")

Receive = ASGIReceiveCallable
Send = ASGISendCallable

MEDIA_PATH: Final = re.compile(r"/media/(?P<call_id>[^/]+)/(?P<role>[^/]+)")
SIGNATURE_HEADER: Final = b"x-twilio-signature"
# How long a leg's socket is drained for Twilio's close after the call ended (Twilio answers a
# close at once; a peer that never does is dropped with the handler).
DRAIN_S: Final = 5.0


class MediaCall(Protocol):
    """A live call as the media route needs it (``calls.session.CallSession``)."""

    @property
    def ended(self) -> bool: ...

    def expects_leg(self, role: Role) -> bool: ...

    def attach_leg(self, role: Role, inbound: Inbound) -> MediaLeg | None: ...


class MediaCalls(Protocol):
    """Live calls by id (``calls.supervisor.CallSupervisor``)."""

    def find(self, call_id: str) -> MediaCall | None: ...


class MediaRoute:
    """ASGI: media WebSockets to ``serve_media_socket``, everything else to ``app``."""

    def __init__(
        self,
        app: ASGIFramework,
        calls: MediaCalls,
        checker: SignatureChecker,
        counters: Counter[str],
    ) -> None:
        self._app = app
        self._calls = calls
        self._checker = checker
        self._counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and MEDIA_PATH.fullmatch(scope["path"]):
            await serve_media_socket(
                scope, receive, send, self._calls, self._checker, self._counters
            )
        else:
            await self._app(scope, receive, send)


async def serve_media_socket(
    scope: WebsocketScope,
    receive: Receive,
    send: Send,
    calls: MediaCalls,
    checker: SignatureChecker,
    counters: Counter[str],
) -> None:
    """Check and accept one media upgrade, hand it to its call, and write until the call ends."""
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    path = scope["path"]
    match = MEDIA_PATH.fullmatch(path)
    if match is None:  # MediaRoute sends only matching paths here
        return
    signature = _header(scope, SIGNATURE_HEADER)
    if not checker.check_websocket(path, scope["query_string"], signature):
        counters["bad_signature"] += 1
        log.warning("signature_rejected", route=path, present=signature is not None, upgrade=True)
        await _deny(send, 403, "invalid signature")
        return
    call_id, role_name = match["call_id"], match["role"]
    call = calls.find(call_id)
    if call is None or role_name not in Role.__members__.values():
        counters["unknown_call"] += 1
        log.warning("unknown_call", call_id=call_id, route=path)
        await _deny(send, 404, "unknown call")
        return
    role = Role(role_name)
    if not call.expects_leg(role):
        await _refuse(send, counters, call_id, role, ended=call.ended)
        return
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    twilio = _TwilioSide(receive)
    leg = call.attach_leg(role, twilio.next_message)
    if leg is None:  # the call ended or changed while the upgrade was accepted
        await _refuse(send, counters, call_id, role, ended=call.ended, accepted=True)
        return
    async for message in leg.socket_out:
        await send({"type": "websocket.send", "bytes": None, "text": message})
    await send({"type": "websocket.close", "code": 1000, "reason": None})
    await twilio.drain()


class _TwilioSide:
    """What Twilio sends on one socket (hypercorn's ``receive``), and whether its close came."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.closed = False

    async def next_message(self) -> str | bytes:
        """The ``Inbound`` of the call's leg: the next message, or ``LegClosed``."""
        event = await self._receive()
        if event["type"] == "websocket.receive":
            text = event["text"]
            return text if text is not None else (event["bytes"] or b"")
        self.closed = True
        # hypercorn reports every close as 1000 or 1006 (protocol/ws_stream.py), so the code
        # says little; the call decides from what it saw before (a ``stop``, or nothing).
        code = event.get("code")
        msg = f"socket closed ({event['type']}, code {code})"
        raise LegClosed(msg, code if isinstance(code, int) else None)

    async def drain(self) -> None:
        """Read and drop what Twilio still sends until its close, for at most ``DRAIN_S``. The
        call stopped reading when it ended; hypercorn stops reading the socket once its queue
        for us is full, and would then never see Twilio's close: the socket and its tasks
        stayed open."""
        with trio.move_on_after(DRAIN_S):
            while not self.closed:
                self.closed = (await self._receive())["type"] != "websocket.receive"


async def _refuse(
    send: Send,
    counters: Counter[str],
    call_id: str,
    role: Role,
    *,
    ended: bool,
    accepted: bool = False,
) -> None:
    counters["media_refused"] += 1
    log.warning("media_refused", call_id=call_id, role=str(role), ended=ended)
    if accepted:
        await send({"type": "websocket.close", "code": 1008, "reason": None})
    else:
        await _deny(send, 409, "media leg not expected")


async def _deny(send: Send, status: int, message: str) -> None:
    """Refuse the upgrade with an HTTP status and a JSON body (ASGI WebSocket denial response)."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


def _header(scope: WebsocketScope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
