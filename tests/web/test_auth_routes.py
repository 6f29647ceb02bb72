"""Authentication through the routes: failures slowed and rate-limited on every path, logout
revokes the session, and the login redirect stays on site. Timed on trio's mock clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from quart.testing import QuartClient as _QuartClient  # noqa: F401
from quart.typing import TestClientProtocol as QuartClient
from quart_trio import QuartTrio
from structlog.testing import capture_logs

from callbridge.transcripts import TranscriptHub, open_transcript_hub
from callbridge.web import create_web_blueprint
from callbridge.web.auth import SESSION_COOKIE
from callbridge.web.throttle import AuthThrottle

from ..transcripts.helpers import TOKEN, make_config

ATTACKER = {"client": ("198.51.100.7", 5555)}
NEIGHBOUR = {"client": ("198.51.100.8", 5555)}
BURST = 10
DELAY_S = 0.5
REFILL_S = 6.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[TranscriptHub]:
    async with open_transcript_hub(make_config(tmp_path)) as hub:
        yield hub


@pytest.fixture
def throttle(request: pytest.FixtureRequest) -> AuthThrottle:
    """The routes' throttle. Rate-limit tests run on a MockClock that only moves when told (the
    hub's writer thread would let an autojump clock leap to the next deadline mid-test), so
    their failures are answered without a delay."""
    delay_s = 0.0 if "mock_clock" in request.fixturenames else DELAY_S
    return AuthThrottle(burst=BURST, refill_s=REFILL_S, delay_s=delay_s)


@pytest.fixture
def client(hub: TranscriptHub, tmp_path: Path, throttle: AuthThrottle) -> QuartClient:
    app = QuartTrio("test")
    app.register_blueprint(create_web_blueprint(hub, make_config(tmp_path), throttle=throttle))
    return app.test_client()


async def timed(call: Any) -> tuple[Any, float]:
    start = trio.current_time()
    response = await call
    return response, trio.current_time() - start


async def login_cookie(client: QuartClient, scope: dict[str, Any] = NEIGHBOUR) -> str:
    response = await client.post("/login", form={"token": TOKEN}, scope_base=scope)
    assert response.status_code == 302
    return str(response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])


class TestFailuresAreSlowed:
    @pytest.mark.parametrize("path", ["/api/calls", "/api/feed", "/api/calls/x/feed", "/calls"])
    async def test_a_wrong_bearer_token_is_answered_late(
        self, client: QuartClient, path: str, autojump_clock: trio.testing.MockClock
    ) -> None:
        headers = {"Authorization": "Bearer wrong"}
        with capture_logs() as logs:
            response, took = await timed(client.get(path, headers=headers, scope_base=ATTACKER))
        assert response.status_code in (401, 302)
        assert took >= DELAY_S
        failed = [e for e in logs if e["event"] == "web_auth_failed"]
        assert failed[0]["via"] == "bearer" and failed[0]["remote"] == "198.51.100.7"
        assert "wrong" not in str(logs)

    async def test_a_bad_session_cookie_is_answered_late(
        self, client: QuartClient, throttle: AuthThrottle, autojump_clock: trio.testing.MockClock
    ) -> None:
        client.set_cookie("localhost", SESSION_COOKIE, "forged.1.abc")
        response, took = await timed(client.get("/api/calls", scope_base=ATTACKER))
        assert response.status_code == 401 and took >= DELAY_S
        assert throttle.failures == 1

    async def test_no_credentials_is_not_a_failure(
        self, client: QuartClient, throttle: AuthThrottle
    ) -> None:
        response = await client.get("/api/calls", scope_base=ATTACKER)
        assert response.status_code == 401 and throttle.failures == 0


class TestGuessesAreRateLimited:
    async def test_bearer_guesses_past_the_burst_get_429_even_with_the_right_token(
        self, client: QuartClient, mock_clock: trio.testing.MockClock
    ) -> None:
        cookie = await login_cookie(client, ATTACKER)
        assert client.cookie_jar is not None
        client.cookie_jar.clear()
        for _ in range(BURST):
            response = await client.get(
                "/api/calls", headers={"Authorization": "Bearer wrong"}, scope_base=ATTACKER
            )
            assert response.status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        refused = await client.get("/api/calls", headers=right, scope_base=ATTACKER)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert (await refused.get_json())["error"] == "too_many_failures"
        # Another address is unaffected, and so is a valid session from the same address.
        assert (
            await client.get("/api/calls", headers=right, scope_base=NEIGHBOUR)
        ).status_code == 200
        client.set_cookie("localhost", SESSION_COOKIE, cookie)
        assert (await client.get("/api/calls", scope_base=ATTACKER)).status_code == 200
        assert client.cookie_jar is not None
        client.cookie_jar.clear()
        # After the refill the address may try again.
        mock_clock.jump(REFILL_S)
        assert (
            await client.get("/api/calls", headers=right, scope_base=ATTACKER)
        ).status_code == 200

    async def test_login_guesses_past_the_burst_get_429(
        self, client: QuartClient, mock_clock: trio.testing.MockClock
    ) -> None:
        for _ in range(BURST):
            response = await client.post("/login", form={"token": "guess"}, scope_base=ATTACKER)
            assert response.status_code == 401
        refused = await client.post("/login", form={"token": TOKEN}, scope_base=ATTACKER)
        assert refused.status_code == 429 and "Set-Cookie" not in refused.headers
        assert "Too many wrong tokens" in await refused.get_data(as_text=True)
        assert "Retry-After" in refused.headers


class TestLogout:
    async def test_logout_revokes_the_cookie_even_if_it_was_copied(
        self, client: QuartClient
    ) -> None:
        cookie = await login_cookie(client)
        other = await login_cookie(client)
        assert cookie != other
        assert (await client.get("/api/session", scope_base=NEIGHBOUR)).status_code == 200
        client.set_cookie("localhost", SESSION_COOKIE, cookie)
        logout = await client.post("/logout", scope_base=NEIGHBOUR)
        assert logout.status_code == 302
        client.set_cookie("localhost", SESSION_COOKIE, cookie)  # replayed after logout
        assert (await client.get("/api/session", scope_base=NEIGHBOUR)).status_code == 401
        client.set_cookie("localhost", SESSION_COOKIE, other)  # another login is untouched
        assert (await client.get("/api/session", scope_base=NEIGHBOUR)).status_code == 200


@pytest.mark.parametrize("target", ["/\t/evil.example/x", "/\n/evil.example/x", "/ /evil.example"])
async def test_login_never_redirects_through_whitespace(client: QuartClient, target: str) -> None:
    response = await client.post("/login", form={"token": TOKEN, "next": target})
    assert response.headers["Location"] == "/calls"
    form = await client.get("/login", query_string={"next": target})
    assert "evil.example" not in await form.get_data(as_text=True)
