"""Login sessions: a signed cookie per login, revoked for good by logging out.

A cookie value is ``<session id>.<expiry>.<mac>``: a random id (``secrets.token_urlsafe(16)``,
128 bits), the Unix time it expires, and an HMAC-SHA256 over both keyed with a key derived from
the web token. So a daemon restart keeps people logged in (nothing to look up), changing the token
logs everyone out (every MAC breaks), and a cookie cannot be forged or extended without the token.

Logging out revokes that one session id until its expiry, in memory and in
``<server.state_dir>/web-sessions-revoked.json`` (written atomically off the event loop), so a
copied cookie stays dead after logout even across restarts. Only ids whose MAC verifies are ever
revoked, so the file holds at most one entry per real login of the last ``SESSION_MAX_AGE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import orjson
import trio

from callbridge.config import Secret
from callbridge.log import get_logger

__all__ = ["REVOKED_FILE", "SESSION_MAX_AGE_S", "SessionCookies"]

log = get_logger("callbridge.web.sessions")

SESSION_MAX_AGE_S: Final = 7 * 86_400
REVOKED_FILE: Final = "web-sessions-revoked.json"
_KEY_CONTEXT: Final = b"callbridge web session v2"
# Revocations kept at most; past this the ones expiring soonest go first (a bound, never reached
# by people logging out of pages).
_MAX_REVOKED: Final = 10_000


class SessionCookies:
    """Issues, checks and revokes session cookie values.

    ``state_dir`` holds the revocation file (None: memory only, for tests); ``now`` is wall-clock
    seconds (expiries outlive the process, so not trio's clock).

    Error handling: an unreadable or corrupt revocation file is logged and treated as empty at
    start; a failed write is logged and the revocation still holds in memory.
    """

    def __init__(
        self,
        token: Secret,
        state_dir: Path | None,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac.new(token.reveal().encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self._path = state_dir / REVOKED_FILE if state_dir is not None else None
        self._now = now
        self._revoked: dict[str, float] = _load(self._path, now())
        # One writer at a time: two logouts must not race on the temporary file.
        self._write_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"SessionCookies(revoked={len(self._revoked)})"

    def issue(self) -> str:
        """A new session's cookie value, valid for ``SESSION_MAX_AGE_S``."""
        session_id = secrets.token_urlsafe(16)
        expires = int(self._now()) + SESSION_MAX_AGE_S
        return f"{session_id}.{expires}.{self._mac(session_id, expires)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a valid, unexpired, unrevoked cookie, else None."""
        session_id, _ = self._verified(cookie)
        if session_id is None or session_id in self._revoked:
            return None
        return session_id

    async def revoke(self, cookie: str | None) -> bool:
        """Log a session out: its cookie never works again. False when it was not valid."""
        session_id, expires = self._verified(cookie)
        if session_id is None:
            return False
        self._revoked[session_id] = expires
        self._prune()
        if self._path is not None:
            async with self._write_lock:
                snapshot = orjson.dumps(self._revoked)
                await trio.to_thread.run_sync(_write_atomically, self._path, snapshot)
        return True

    def _verified(self, cookie: str | None) -> tuple[str | None, float]:
        session_id, _, rest = (cookie or "").partition(".")
        expiry, _, mac = rest.partition(".")
        if not (session_id and expiry.isascii() and expiry.isdigit() and len(expiry) <= 12):
            return None, 0.0
        expires = int(expiry)
        good = hmac.compare_digest(mac.encode(), self._mac(session_id, expires).encode())
        if not good or expires <= self._now():
            return None, 0.0
        return session_id, float(expires)

    def _mac(self, session_id: str, expires: int) -> str:
        message = f"{session_id}.{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _prune(self) -> None:
        now = self._now()
        live = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        if len(live) > _MAX_REVOKED:
            live = dict(sorted(live.items(), key=lambda item: item[1])[-_MAX_REVOKED:])
        self._revoked = live


def _load(path: Path | None, now: float) -> dict[str, float]:
    if path is None or not path.exists():
        return {}
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        log.error("web_sessions_unreadable", path=str(path), error=str(exc))
        return {}
    if not isinstance(data, dict):
        log.error("web_sessions_unreadable", path=str(path), error="not a JSON object")
        return {}
    return {
        str(sid): float(exp)
        for sid, exp in data.items()
        if isinstance(exp, int | float) and exp > now
    }


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as exc:
        log.error("web_sessions_write_failed", path=str(path), error=str(exc))
