"""The Twilio-facing routes through quart's test client: signatures, TwiML, ids, media upgrade."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from quart.testing.connections import WebsocketResponseError
from quart_trio import QuartTrio
from twilio.request_validator import RequestValidator

from callbridge.app import create_app
from callbridge.calls.session import CallDeps
from callbridge.calls.supervisor import CallSupervisor
from callbridge.config import Config
from callbridge.routing import LanguageOperatorPool
from callbridge.services import Services
from callbridge.telephony.signature import SignatureChecker
from tests.calls.fakes import FakeControl, FakeLinks, FakeSink
from tests.calls.harness import make_config

PUBLIC = "https://bridge.example.com"
TOKEN = "token"
CALLER_SID = "CA" + "a" * 32


def sign(path: str, form: dict[str, str], base: str = PUBLIC) -> str:
    signature: str = RequestValidator(TOKEN).compute_signature(base + path, form)
    return signature


@pytest.fixture
async def app(nursery: trio.Nursery) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    async for built in build_app(nursery, make_config()):
        yield built


@pytest.fixture
async def small_app(
    nursery: trio.Nursery,
) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    async for built in build_app(nursery, make_config(CALLBRIDGE_SERVER_MAX_CALLS="2")):
        yield built


async def build_app(
    nursery: trio.Nursery, config: Config
) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    control = FakeControl()
    deps = CallDeps(
        config, control, FakeLinks(), FakeSink(), LanguageOperatorPool.from_config(config)
    )
    supervisor = CallSupervisor(deps)
    await nursery.start(supervisor.run)
    services = Services(config, None, supervisor, FakeSink(), SignatureChecker(config), Counter())  # type: ignore[arg-type]
    yield create_app(services), services, control
    supervisor.cancel_all()


async def post(app: QuartTrio, path: str, form: dict[str, str], signature: str | None) -> Any:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return await app.test_client().post(path, form=form, headers=headers)


INCOMING = {
    "CallSid": CALLER_SID,
    "From": "+15551112222",
    "To": "+15559990000",
    "CallStatus": "ringing",
}


class TestIncomingCall:
    async def test_signed_call_is_admitted_and_connected_to_a_stream(self, app: Any) -> None:
        quart_app, services, _ = app
        response = await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        assert response.status_code == 200
        body = await response.get_data(as_text=True)
        [session] = [services.supervisor.find(r.id) for r in services.supervisor.active_records()]
        assert session is not None
        call_id = session.record.id
        assert f'<Stream url="wss://bridge.example.com/media/{call_id}/caller">' in body
        assert f'action="https://bridge.example.com/twiml/stream-ended/{call_id}/caller"' in body
        assert '<Say language="en-US">' in body
        assert session.record.caller_number == "+15551112222"

    @pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl", "SIGNED_FOR_HOST"])
    async def test_missing_bad_or_host_signed_signature_is_403(
        self, app: Any, signature: str | None
    ) -> None:
        quart_app, services, _ = app
        if signature == "SIGNED_FOR_HOST":  # signed for the internal address, not the public URL
            signature = sign("/twiml/client", INCOMING, base="http://localhost")
        response = await post(quart_app, "/twiml/client", INCOMING, signature)
        assert response.status_code == 403
        assert services.supervisor.active_count == 0
        assert services.counters["bad_signature"] == 1

    async def test_full_house_hears_busy_message(self, small_app: Any) -> None:
        quart_app, services, _ = small_app
        for n in range(3):
            form = {**INCOMING, "CallSid": f"CA{n:032d}"}
            response = await post(quart_app, "/twiml/client", form, sign("/twiml/client", form))
        body = await response.get_data(as_text=True)
        assert "<Hangup" in body and "busy" in body
        assert services.supervisor.active_count == 2
        assert services.counters["refused_calls"] == 1


class TestCallRoutes:
    async def test_unknown_call_ids_are_404(self, app: Any) -> None:
        quart_app, services, _ = app
        form = {"CallSid": "CA" + "b" * 32, "CallStatus": "ringing"}
        for path in (
            "/twiml/operator/nope",
            "/twilio/status/nope/operator",
            "/twiml/stream-ended/nope/caller",
        ):
            response = await post(quart_app, path, form, sign(path, form))
            assert response.status_code == 404, path
        assert services.counters["unknown_call"] == 3

    async def test_status_callback_without_call_sid_is_400(self, app: Any) -> None:
        quart_app, services, _ = app
        await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        call_id = services.supervisor.active_records()[0].id
        path = f"/twilio/status/{call_id}/operator"
        response = await post(
            quart_app, path, {"CallStatus": "ringing"}, sign(path, {"CallStatus": "ringing"})
        )
        assert response.status_code == 400

    async def test_answer_for_a_stale_operator_call_hangs_up(self, app: Any) -> None:
        quart_app, services, _ = app
        await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        call_id = services.supervisor.active_records()[0].id
        path = f"/twiml/operator/{call_id}"
        form = {"CallSid": "CA" + "f" * 32, "CallStatus": "in-progress"}
        response = await post(quart_app, path, form, sign(path, form))
        assert response.status_code == 200
        body = await response.get_data(as_text=True)
        assert "<Hangup" in body and "<Stream" not in body


class TestMediaUpgrade:
    async def upgrade(self, quart_app: QuartTrio, path: str, signature: str | None) -> int:
        headers = {"X-Twilio-Signature": signature} if signature else {}
        start = {
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
        status = 101
        try:
            async with quart_app.test_client().websocket(path, headers=headers) as ws:
                await ws.send(json.dumps(start))
                first = json.loads(await ws.receive())  # hold audio starts at once
                assert first["event"] == "media"
        except* WebsocketResponseError as group:
            status = int(_first(group).response.status_code)
        return status

    async def test_upgrade_needs_a_signature_over_the_public_wss_url(self, app: Any) -> None:
        quart_app, services, _ = app
        await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        call_id = services.supervisor.active_records()[0].id
        path = f"/media/{call_id}/caller"
        assert await self.upgrade(quart_app, path, None) == 403
        assert await self.upgrade(quart_app, path, sign(path, {}, base="ws://localhost")) == 403
        assert (
            await self.upgrade(
                quart_app,
                "/media/unknown/caller",
                sign("/media/unknown/caller", {}, base="wss://bridge.example.com"),
            )
            == 404
        )
        # The operator's leg is refused before the operator answered.
        op_path = f"/media/{call_id}/operator"
        assert (
            await self.upgrade(
                quart_app, op_path, sign(op_path, {}, base="wss://bridge.example.com")
            )
            == 409
        )
        assert (
            await self.upgrade(quart_app, path, sign(path, {}, base="wss://bridge.example.com"))
            == 101
        )


def _first(group: BaseExceptionGroup[WebsocketResponseError]) -> WebsocketResponseError:
    inner = group.exceptions[0]
    return _first(inner) if isinstance(inner, BaseExceptionGroup) else inner


async def test_healthz_reports_status_and_rejections(app: Any) -> None:
    quart_app, _, _ = app
    await post(quart_app, "/twiml/client", INCOMING, None)
    health = await (await quart_app.test_client().get("/healthz")).get_json()
    assert health["status"] == "ok"
    assert health["active_calls"] == 0
    assert health["rejected"] == {"bad_signature": 1}
