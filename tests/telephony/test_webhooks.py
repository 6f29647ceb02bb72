"""The Twilio-facing routes through quart's test client: signatures, TwiML, ids, media upgrade."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from quart.wrappers import Request
from structlog.testing import capture_logs
from werkzeug.exceptions import BadRequest

from tests.telephony.webhook_app import CALLER_SID, INCOMING, post, sign


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
    async def test_unknown_call_ids_are_404_for_status_callbacks(self, app: Any) -> None:
        quart_app, services, _ = app
        form = {"CallSid": "CA" + "b" * 32, "CallStatus": "ringing"}
        path = "/twilio/status/nope/operator"
        response = await post(quart_app, path, form, sign(path, form))
        assert response.status_code == 404
        assert services.counters["unknown_call"] == 1

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


async def test_healthz_counts_the_live_tasks(app: Any) -> None:
    """``tasks`` is every live trio task: five more while five sleep, back once they ended."""
    quart_app, _, _ = app
    client = quart_app.test_client()

    async def tasks() -> int:
        count: int = (await (await client.get("/healthz")).get_json())["tasks"]
        return count

    before = await tasks()
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        during = await tasks()
        nursery.cancel_scope.cancel()
    assert before > 0
    assert during == before + 5
    assert await tasks() == before


async def assert_twiml(response: Any, *expected: str) -> str:
    """A 200 TwiML answer (what Twilio runs) containing each of ``expected``."""
    assert response.status_code == 200
    assert response.content_type.startswith("text/xml")
    body: str = await response.get_data(as_text=True)
    assert body.startswith("<?xml") and "<Response>" in body, body
    for part in expected:
        assert part in body, body
    return body


class TestTwimlOnEveryPath:
    """Twilio runs these answers as TwiML: a JSON 404/400/500 would make it play "an application
    error has occurred" to a person (error 11200)."""

    @pytest.mark.parametrize("path", ["/twiml/operator/nope", "/twiml/stream-ended/nope/caller"])
    async def test_an_unknown_call_gets_a_hangup(self, app: Any, path: str) -> None:
        quart_app, services, _ = app
        form = {"CallSid": "CA" + "b" * 32, "CallStatus": "in-progress"}
        await assert_twiml(await post(quart_app, path, form, sign(path, form)), "<Hangup />")
        assert services.counters["unknown_call"] == 1

    async def test_an_unknown_role_gets_a_hangup(self, app: Any) -> None:
        quart_app, services, _ = app
        await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        call_id = services.supervisor.active_records()[0].id
        path = f"/twiml/stream-ended/{call_id}/nobody"
        form = {"CallSid": CALLER_SID}
        await assert_twiml(await post(quart_app, path, form, sign(path, form)), "<Hangup />")

    async def test_an_incoming_call_without_call_sid_hears_the_apology(self, app: Any) -> None:
        quart_app, services, _ = app
        form = {"From": "+15551112222", "CallStatus": "ringing"}
        response = await post(quart_app, "/twiml/client", form, sign("/twiml/client", form))
        await assert_twiml(response, "<Say", "<Hangup />")
        assert services.counters["bad_request"] == 1
        assert services.supervisor.active_count == 0

    async def test_a_bug_in_the_incoming_call_handler_is_an_apology_not_a_500(
        self, app: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        quart_app, services, _ = app

        async def broken(**_: Any) -> None:
            msg = "a bug"
            raise RuntimeError(msg)

        monkeypatch.setattr(services.supervisor, "admit", broken)
        with capture_logs() as logs:
            response = await post(
                quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING)
            )
        body = await assert_twiml(response, "<Say", "<Hangup />")
        assert "sorry" in body.lower()
        assert services.counters["internal_error"] == 1
        [failed] = [e for e in logs if e["event"] == "webhook_failed"]
        assert failed["route"] == "/twiml/client" and failed["exc_info"]

    async def test_a_bug_while_the_operator_answers_hangs_up_the_operator(
        self, app: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        quart_app, services, _ = app
        await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        [session] = services.supervisor.sessions()

        def broken(call_sid: str) -> bool:
            msg = "a bug"
            raise RuntimeError(msg)

        monkeypatch.setattr(session, "operator_answered", broken)
        path = f"/twiml/operator/{session.record.id}"
        form = {"CallSid": "CA" + "d" * 32, "CallStatus": "in-progress"}
        await assert_twiml(await post(quart_app, path, form, sign(path, form)), "<Hangup />")
        assert services.counters["internal_error"] == 1

    async def test_a_body_that_cannot_be_parsed_gets_a_hangup(
        self, app: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        quart_app, services, _ = app

        async def unreadable(_: Request) -> None:
            raise BadRequest("the form cannot be decoded")

        monkeypatch.setattr(Request, "form", property(unreadable))
        path = "/twiml/operator/any"
        response = await post(quart_app, path, {"CallSid": CALLER_SID}, "sig")
        await assert_twiml(response, "<Hangup />")
        assert services.counters["bad_request"] == 1

    async def test_status_callbacks_keep_their_status_codes(self, app: Any) -> None:
        quart_app, services, _ = app
        await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        call_id = services.supervisor.active_records()[0].id
        path = f"/twilio/status/{call_id}/operator"
        form = {"CallStatus": "ringing"}  # no CallSid
        response = await post(quart_app, path, form, sign(path, form))
        assert response.status_code == 400
        assert response.content_type == "application/json"
