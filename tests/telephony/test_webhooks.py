"""The Twilio-facing routes through quart's test client: signatures, TwiML, ids, media upgrade."""

from __future__ import annotations

from typing import Any

import pytest

from tests.telephony.webhook_app import INCOMING, post, sign


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


async def test_healthz_reports_status_and_rejections(app: Any) -> None:
    quart_app, _, _ = app
    await post(quart_app, "/twiml/client", INCOMING, None)
    health = await (await quart_app.test_client().get("/healthz")).get_json()
    assert health["status"] == "ok"
    assert health["active_calls"] == 0
    assert health["rejected"] == {"bad_signature": 1}
