"""The web blueprint through quart-trio's test client: auth, pages, API, exports and feeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from quart.typing import TestClientProtocol as QuartClient
from quart_trio import QuartTrio
from structlog.testing import capture_logs

from callbridge.roles import Direction
from callbridge.transcripts import TranscriptHub, open_transcript_hub
from callbridge.web import create_web_blueprint
from callbridge.web.routes import CONTENT_SECURITY_POLICY

from ..transcripts.helpers import TOKEN, event, make_config, make_record, utterance_events

BEARER = {"Authorization": f"Bearer {TOKEN}"}
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[TranscriptHub]:
    async with open_transcript_hub(make_config(tmp_path)) as hub:
        yield hub


@pytest.fixture
def client(hub: TranscriptHub, tmp_path: Path) -> QuartClient:
    app = QuartTrio("test")
    app.register_blueprint(create_web_blueprint(hub, make_config(tmp_path)))
    return app.test_client()


def seed(hub: TranscriptHub, call_id: str = "call-1") -> None:
    hub.call_updated(
        make_record(call_id, status="connected", answered_at=1000.5, received_at=999.0)
    )
    for e in utterance_events("u1", "hello " + XSS, "hola", call_id=call_id):
        hub.publish(e)


class TestAuth:
    async def test_api_without_or_with_a_wrong_token_is_401_json(self, client: QuartClient) -> None:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            response = await client.get("/api/calls", headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.get_json())["error"] == "unauthorized"

    async def test_bearer_token_opens_the_api(self, client: QuartClient) -> None:
        response = await client.get("/api/calls", headers=BEARER)
        assert response.status_code == 200
        assert await response.get_json() == {"calls": []}

    async def test_pages_redirect_to_login_keeping_the_target(self, client: QuartClient) -> None:
        response = await client.get("/calls/abc")
        assert response.status_code == 302
        assert response.headers["Location"] == "/login?next=/calls/abc"

    async def test_login_sets_a_strict_httponly_cookie_that_opens_pages_and_api(
        self, client: QuartClient
    ) -> None:
        response = await client.post("/login", form={"token": TOKEN, "next": "/calls/abc"})
        assert response.status_code == 302 and response.headers["Location"] == "/calls/abc"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert TOKEN not in cookie
        assert (await client.get("/calls")).status_code == 200
        assert (await client.get("/api/calls")).status_code == 200
        logout = await client.post("/logout")
        assert logout.status_code == 302
        assert (await client.get("/api/calls")).status_code == 401

    async def test_wrong_login_is_401_with_the_form_and_no_cookie(
        self, client: QuartClient
    ) -> None:
        with capture_logs() as logs:
            response = await client.post("/login", form={"token": "wrong", "next": "/calls"})
        assert response.status_code == 401
        assert "Set-Cookie" not in response.headers
        assert "Wrong token." in await response.get_data(as_text=True)
        assert [e["event"] for e in logs] == ["web_login_failed"]
        assert "wrong" not in str(logs)

    async def test_login_never_redirects_off_site(self, client: QuartClient) -> None:
        response = await client.post("/login", form={"token": TOKEN, "next": "//evil.example/"})
        assert response.headers["Location"] == "/calls"

    async def test_no_token_configured_means_everything_is_off(
        self, hub: TranscriptHub, tmp_path: Path
    ) -> None:
        app = QuartTrio("test")
        with capture_logs() as logs:
            app.register_blueprint(create_web_blueprint(hub, make_config(tmp_path, token=None)))
        assert logs[0]["event"] == "web_disabled"
        client = app.test_client()
        for path in ("/calls", "/api/calls", "/api/feed", "/login", "/calls/x"):
            response = await client.get(path, headers=BEARER)
            assert response.status_code == 404, path
            assert "CALLBRIDGE_WEB_TOKEN" in await response.get_data(as_text=True)


class TestPages:
    async def test_transcription_redirects_to_calls(self, client: QuartClient) -> None:
        response = await client.get("/transcription")
        assert (response.status_code, response.headers["Location"]) == (302, "/calls")

    async def test_pages_carry_a_content_security_policy(self, client: QuartClient) -> None:
        for path in ("/calls", "/calls/call-1"):
            response = await client.get(path, headers=BEARER)
            assert response.status_code == 200
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert "script-src 'self'" in CONTENT_SECURITY_POLICY
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        login = await client.get("/login?next=/calls")
        assert login.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY

    async def test_a_hostile_call_id_is_refused_not_echoed(self, client: QuartClient) -> None:
        response = await client.get("/calls/%3Cscript%3E", headers=BEARER)
        assert response.status_code == 404
        assert "<script>" not in await response.get_data(as_text=True)

    async def test_next_is_escaped_in_the_login_form(self, client: QuartClient) -> None:
        page = await (await client.get('/login?next=/calls"><script>x</script>')).get_data(
            as_text=True
        )
        assert "<script>x" not in page

    async def test_static_files_are_served(self, client: QuartClient) -> None:
        for name in ("common.js", "call.js", "calls.js", "transcripts.css"):
            assert (await client.get(f"/web/static/{name}")).status_code == 200
        assert (await client.get("/web/static/../routes.py")).status_code == 404


class TestApi:
    async def test_calls_list_has_the_documented_fields(
        self, client: QuartClient, hub: TranscriptHub
    ) -> None:
        seed(hub)
        body = await (await client.get("/api/calls", headers=BEARER)).get_json()
        [call] = body["calls"]
        for key in (
            "id", "caller_sid", "operator_sid", "caller_number", "operator_number", "caller_language",
            "operator_language", "status", "received_at", "answered_at", "ended_at", "end_reason",
        ):  # fmt: skip
            assert key in call
        assert (call["id"], call["status"], call["active"]) == ("call-1", "connected", True)

    async def test_one_call_with_its_transcript(
        self, client: QuartClient, hub: TranscriptHub
    ) -> None:
        seed(hub)
        body = await (await client.get("/api/calls/call-1", headers=BEARER)).get_json()
        assert body["call"]["id"] == "call-1"
        [u] = body["utterances"]
        assert (u["source_text"], u["translation"], u["latency_ms"]) == (
            "hello " + XSS,
            "hola",
            800,
        )

    async def test_errors_are_json(self, client: QuartClient) -> None:
        missing = await client.get("/api/calls/nope", headers=BEARER)
        assert missing.status_code == 404 and (await missing.get_json())["error"] == "not_found"
        bad = await client.get("/api/calls/a%20b", headers=BEARER)
        assert bad.status_code == 400 and "call ids" in (await bad.get_json())["message"]
        fmt = await client.get("/api/calls/call-1/transcript.pdf", headers=BEARER)
        assert fmt.status_code == 404 and (await fmt.get_json())["error"] == "unknown_format"

    async def test_exports_match_the_stored_transcript(
        self, client: QuartClient, hub: TranscriptHub
    ) -> None:
        seed(hub)
        stored = await client.get("/api/calls/call-1", headers=BEARER)
        as_json = await client.get("/api/calls/call-1/transcript.json", headers=BEARER)
        assert orjson.loads(await as_json.get_data()) == await stored.get_json()
        text = await client.get("/api/calls/call-1/transcript.txt", headers=BEARER)
        assert text.mimetype == "text/plain"
        assert f"[00:00:00] Caller (en): hello {XSS}\n" in await text.get_data(as_text=True)
        vtt = await client.get("/api/calls/call-1/transcript.vtt", headers=BEARER)
        assert vtt.mimetype == "text/vtt"
        body = await vtt.get_data(as_text=True)
        assert "00:00:00.500 --> 00:00:02.000\n<v Caller>hello &lt;script&gt;" in body
        assert "<script>" not in body


@asynccontextmanager
async def open_sse(client: QuartClient, path: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """A streaming request, ended by cancelling it: quart's test connection cannot see the end of
    a response that was cut off by a client disconnect, so ``disconnect()`` would wait forever."""
    with trio.CancelScope() as scope:
        async with client.request(path, headers=headers) as conn:
            await conn.send_complete()
            yield conn
            scope.cancel()


async def read_events(conn: object, count: int) -> list[dict[str, object]]:
    """Read SSE frames until ``count`` data messages arrived; returns them decoded."""
    buffer = b""
    found: list[dict[str, object]] = []
    while len(found) < count:
        buffer += await conn.receive()  # type: ignore[attr-defined]
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            fields = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
            if b"data" in fields:
                message = orjson.loads(fields[b"data"])
                message["_id"] = fields.get(b"id", b"").decode()
                found.append(message)
    return found


class TestFeeds:
    async def test_call_feed_sends_a_snapshot_then_live_events(
        self, client: QuartClient, hub: TranscriptHub
    ) -> None:
        seed(hub)
        with trio.fail_after(10):
            async with open_sse(client, "/api/calls/call-1/feed", BEARER) as conn:
                [snapshot] = await read_events(conn, 1)
                hub.publish(event("partial", "u2", "par", direction=Direction.OPERATOR_TO_CALLER))
                [partial] = await read_events(conn, 1)
        assert snapshot["type"] == "snapshot"
        assert snapshot["utterances"][0]["source_text"] == "hello " + XSS  # type: ignore[index]
        assert (partial["kind"], partial["text"], partial["speaker"]) == (
            "partial",
            "par",
            "operator",
        )
        assert hub.broadcaster.subscriber_count() == 0  # the disconnect unsubscribed

    async def test_reconnect_with_last_event_id_replays_what_was_missed(
        self, client: QuartClient, hub: TranscriptHub
    ) -> None:
        hub.call_updated(make_record())
        with trio.fail_after(10):
            async with open_sse(client, "/api/calls/call-1/feed", BEARER) as conn:
                [snapshot] = await read_events(conn, 1)
            hub.publish(event("final", "u1", "missed"))
            headers = {**BEARER, "Last-Event-ID": str(snapshot["_id"])}
            async with open_sse(client, "/api/calls/call-1/feed", headers) as conn:
                [replayed] = await read_events(conn, 1)
        assert (replayed["type"], replayed["kind"], replayed["text"]) == (
            "event",
            "final",
            "missed",
        )

    async def test_all_calls_feed(self, client: QuartClient, hub: TranscriptHub) -> None:
        with trio.fail_after(10):
            async with open_sse(client, "/api/feed", BEARER) as conn:
                [snapshot] = await read_events(conn, 1)
                hub.call_updated(make_record("new-call"))
                [update] = await read_events(conn, 1)
        assert snapshot["calls"] == []
        assert (update["kind"], update["data"]["id"]) == ("call", "new-call")  # type: ignore[index]

    async def test_feeds_need_the_token(self, client: QuartClient) -> None:
        for path in ("/api/feed", "/api/calls/call-1/feed"):
            assert (await client.get(path)).status_code == 401


async def test_a_page_that_stops_reading_is_dropped_alone(tmp_path: Path) -> None:
    """A stuck feed fills its channel and is cut off; a reading page gets every event."""
    config = make_config(tmp_path, subscriber_queue=8)
    async with open_transcript_hub(config) as hub:
        app = QuartTrio("test")
        app.register_blueprint(create_web_blueprint(hub, config))
        client = app.test_client()
        hub.call_updated(make_record())
        with trio.fail_after(10):
            async with (
                open_sse(client, "/api/calls/call-1/feed", BEARER) as stuck,
                open_sse(client, "/api/calls/call-1/feed", BEARER) as reader,
            ):
                await read_events(reader, 1)
                await read_events(stuck, 1)
                for i in range(60):
                    hub.publish(event("partial", f"u{i}", str(i)))
                    await trio.testing.wait_all_tasks_blocked()
                    got = await read_events(reader, 1)
                    assert got[0]["text"] == str(i)
                assert hub.broadcaster.stats.dropped_subscribers == 1
                assert hub.broadcaster.subscriber_count("call:call-1") == 1
