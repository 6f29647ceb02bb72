"""The media WebSocket as raw ASGI: checked before it is accepted, then handed to its call."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import trio
import trio.testing

from callbridge.records import EndReason
from callbridge.roles import Role
from callbridge.services import Services
from callbridge.telephony.media_socket import MediaRoute, serve_media_socket
from tests.telephony.webhook_app import CALLER_SID, INCOMING, post, sign

WSS = "wss://bridge.example.com"
START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ" + "1" * 32,
    "start": {
        "accountSid": "AC" + "1" * 32,
        "streamSid": "MZ" + "1" * 32,
        "callSid": CALLER_SID,
        "tracks": ["inbound"],
        "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


class Socket:
    """The server side of one upgrade, as hypercorn would drive an ASGI app."""

    def __init__(self, path: str, signature: str | None) -> None:
        headers = [(b"x-twilio-signature", signature.encode())] if signature else []
        self.scope: Any = {
            "type": "websocket",
            "path": path,
            "query_string": b"",
            "headers": headers,
        }
        self._in, self._from_twilio = trio.open_memory_channel[MutableMapping[str, Any]](16)
        self.out, self._to_twilio = trio.open_memory_channel[MutableMapping[str, Any]](64)
        self._in.send_nowait({"type": "websocket.connect"})

    async def receive(self) -> Any:
        return await self._from_twilio.receive()

    async def send(self, event: Any) -> None:
        await self.out.send(event)

    async def twilio_says(self, message: dict[str, Any]) -> None:
        await self._in.send({"type": "websocket.receive", "text": json.dumps(message)})

    async def twilio_closes(self) -> None:
        await self._in.send({"type": "websocket.disconnect", "code": 1006})

    async def next_event(self) -> Any:
        return await self._to_twilio.receive()


async def upgrade(services: Services, socket: Socket) -> None:
    await serve_media_socket(
        socket.scope,
        socket.receive,
        socket.send,
        services.supervisor,
        services.signatures,
        services.counters,
    )


async def admitted_call(quart_app: Any, services: Services) -> str:
    await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
    return services.supervisor.active_records()[0].id


async def denied_with(services: Services, path: str, signature: str | None) -> int:
    socket = Socket(path, signature)
    await upgrade(services, socket)
    start = await socket.next_event()
    assert start["type"] == "websocket.http.response.start"
    body = await socket.next_event()
    assert body["type"] == "websocket.http.response.body" and json.loads(body["body"])["error"]
    return int(start["status"])


class TestUpgradeChecks:
    async def test_a_bad_or_missing_signature_is_403_before_anything_else(self, app: Any) -> None:
        quart_app, services, _ = app
        call_id = await admitted_call(quart_app, services)
        path = f"/media/{call_id}/caller"
        assert await denied_with(services, path, None) == 403
        assert await denied_with(services, path, sign(path, {}, base="ws://localhost")) == 403
        assert services.counters["bad_signature"] == 2

    async def test_an_unknown_call_or_party_is_404(self, app: Any) -> None:
        _, services, _ = app
        path = "/media/unknown/caller"
        assert await denied_with(services, path, sign(path, {}, base=WSS)) == 404

    async def test_a_leg_the_call_does_not_expect_is_409_and_not_registered(self, app: Any) -> None:
        quart_app, services, _ = app
        call_id = await admitted_call(quart_app, services)
        path = f"/media/{call_id}/operator"  # the operator has not answered
        assert await denied_with(services, path, sign(path, {}, base=WSS)) == 409
        session = services.supervisor.find(call_id)
        assert session is not None and session.expects_leg(Role.CALLER)


class TestAcceptedStream:
    async def test_the_call_reads_the_socket_and_plays_hold_audio_into_it(
        self, app: Any, nursery: trio.Nursery
    ) -> None:
        quart_app, services, _ = app
        call_id = await admitted_call(quart_app, services)
        path = f"/media/{call_id}/caller"
        socket = Socket(path, sign(path, {}, base=WSS))
        nursery.start_soon(upgrade, services, socket)
        assert (await socket.next_event())["type"] == "websocket.accept"
        await socket.twilio_says(START)
        sent = await socket.next_event()
        assert sent["type"] == "websocket.send" and json.loads(sent["text"])["event"] == "media"
        session = services.supervisor.find(call_id)
        assert session is not None and not session.expects_leg(Role.CALLER)

    async def test_twilio_closing_without_stop_ends_the_call_and_the_handler(
        self, app: Any
    ) -> None:
        quart_app, services, _ = app
        call_id = await admitted_call(quart_app, services)
        path = f"/media/{call_id}/caller"
        socket = Socket(path, sign(path, {}, base=WSS))
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(upgrade, services, socket)
                await socket.twilio_says(START)
                await socket.twilio_closes()
            # The handler returned: the call closed its leg.
        while services.supervisor.find(call_id) is not None:
            await trio.sleep(0.01)
        record = services.supervisor.find_any(call_id)
        assert record is not None and record.record.end_reason == "media_lost"

    async def test_after_the_call_ended_the_handler_reads_on_until_twilios_close(
        self, app: Any
    ) -> None:
        """The call ended elsewhere (here: cancelled) while Twilio kept streaming. The handler
        sends the close, then keeps taking what Twilio sends until Twilio's close: hypercorn
        stops reading a socket whose queue is full (16 here), and would never see the close."""
        quart_app, services, _ = app
        call_id = await admitted_call(quart_app, services)
        path = f"/media/{call_id}/caller"
        socket = Socket(path, sign(path, {}, base=WSS))
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(upgrade, services, socket)
                assert (await socket.next_event())["type"] == "websocket.accept"
                await socket.twilio_says(START)
                session = services.supervisor.find(call_id)
                assert session is not None
                session.cancel(EndReason.SHUTDOWN)
                while (await socket.next_event())["type"] != "websocket.close":
                    pass
                for _ in range(40):  # more than the queue holds: someone must read them
                    await socket.twilio_says(START)
                await socket.twilio_closes()
            # The handler returned once it had read Twilio's close.


async def test_the_route_sends_media_paths_to_the_socket_and_the_rest_to_the_app(
    app: Any,
) -> None:
    _, services, _ = app
    seen: list[str] = []

    async def other(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])

    route = MediaRoute(other, services.supervisor, services.signatures, services.counters)
    await route({"type": "http", "path": "/media/x/caller"}, None, None)  # type: ignore[arg-type]
    socket = Socket("/media/x/caller", None)
    await route(socket.scope, socket.receive, socket.send)
    assert seen == ["/media/x/caller"]
    assert (await socket.next_event())["status"] == 403
