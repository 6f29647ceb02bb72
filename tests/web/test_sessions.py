"""SessionCookies: a signed id per login; logging out revokes it, across restarts too."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from callbridge.config import Secret
from callbridge.web.sessions import REVOKED_FILE, SESSION_MAX_AGE_S, SessionCookies

TOKEN = Secret("a-web-token-of-at-least-32-characters")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_each_login_gets_its_own_value_that_is_not_the_token(clock: Clock) -> None:
    sessions = SessionCookies(TOKEN, None, now=clock)
    first, second = sessions.issue(), sessions.issue()
    assert first != second
    assert TOKEN.reveal() not in first
    assert sessions.session_id(first) and sessions.session_id(second)
    assert sessions.session_id(first) != sessions.session_id(second)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # MAC changed
        lambda c: "other" + c,  # id changed
        lambda c: c.replace(".", ".9", 1),  # expiry extended
        lambda c: "",
        lambda c: "no-dots",
        lambda c: "a..b",
    ],
)
def test_tampered_cookies_are_refused(clock: Clock, tamper: object) -> None:
    sessions = SessionCookies(TOKEN, None, now=clock)
    assert sessions.session_id(tamper(sessions.issue())) is None  # type: ignore[operator]
    assert sessions.session_id(None) is None


def test_a_cookie_expires_and_a_new_token_breaks_every_cookie(clock: Clock) -> None:
    sessions = SessionCookies(TOKEN, None, now=clock)
    cookie = sessions.issue()
    assert (
        SessionCookies(Secret("another-token-" + "x" * 32), None, now=clock).session_id(cookie)
        is None
    )
    clock.now += SESSION_MAX_AGE_S - 1
    assert sessions.session_id(cookie)
    clock.now += 1
    assert sessions.session_id(cookie) is None


async def test_logout_revokes_only_that_session(clock: Clock) -> None:
    sessions = SessionCookies(TOKEN, None, now=clock)
    mine, yours = sessions.issue(), sessions.issue()
    assert await sessions.revoke(mine)
    assert sessions.session_id(mine) is None
    assert sessions.session_id(yours)
    assert not await sessions.revoke("forged.1.abc")


async def test_a_revoked_cookie_stays_dead_after_a_restart(tmp_path: Path, clock: Clock) -> None:
    before = SessionCookies(TOKEN, tmp_path / "state", now=clock)
    cookie, other = before.issue(), before.issue()
    await before.revoke(cookie)
    after = SessionCookies(TOKEN, tmp_path / "state", now=clock)
    assert after.session_id(cookie) is None
    assert after.session_id(other)  # a restart keeps everyone else logged in


async def test_expired_revocations_are_forgotten(tmp_path: Path, clock: Clock) -> None:
    sessions = SessionCookies(TOKEN, tmp_path, now=clock)
    await sessions.revoke(sessions.issue())
    clock.now += SESSION_MAX_AGE_S + 1
    await sessions.revoke(sessions.issue())
    assert len(orjson.loads((tmp_path / REVOKED_FILE).read_bytes())) == 1


def test_a_corrupt_revocation_file_is_logged_and_ignored(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / REVOKED_FILE).write_bytes(b"{not json")
    with capture_logs() as logs:
        sessions = SessionCookies(TOKEN, tmp_path, now=clock)
    assert logs[0]["event"] == "web_sessions_unreadable"
    assert sessions.session_id(sessions.issue())
