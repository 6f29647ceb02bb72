"""Legacy REST sessions (``/session-storage``): creation, deletion, and who leaked one."""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson

from callbridge.sim.palabra.report import SessionReport

__all__ = ["Session", "SessionStore", "jwt_like"]

SESSION_TTL_S = 3600


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_like(claims: dict[str, Any]) -> str:
    """A JWT-shaped opaque string (the live service's ids and tokens look like JWTs)."""
    header = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    return f"{header}.{_b64url(orjson.dumps(claims))}.{_b64url(secrets.token_bytes(32))}"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@attrs.define
class Session:
    report: SessionReport
    principal: str  # whose credentials created it
    publisher: str  # the WebSocket token
    ws_url: str

    @property
    def live(self) -> bool:
        return self.report.deleted_at is None

    def listing(self) -> dict[str, Any]:
        created = self.report.created_at
        return {
            "id": self.report.id,
            "created_at": _iso(created),
            "updated_at": _iso(created),
            "expires_at": _iso(created + SESSION_TTL_S),
        }


@attrs.define
class SessionStore:
    _sessions: dict[str, Session] = attrs.Factory(dict)

    def create(self, *, principal: str, auth_mode: str, intent: str, base_ws: str) -> Session:
        now = time.time()
        session_id = jwt_like({"sid": secrets.token_hex(8), "iat": int(now)})
        publisher = jwt_like({"sub": secrets.token_hex(8), "role": "publisher", "iat": int(now)})
        ws_url = f"{base_ws}/streaming-api/{secrets.token_hex(4)}/v1/speech-to-speech/stream"
        session = Session(
            SessionReport(session_id, auth_mode, intent, now), principal, publisher, ws_url
        )
        self._sessions[session_id] = session
        return session

    def get(self, session_id: str, principal: str) -> Session | None:
        session = self._sessions.get(session_id)
        return (
            session
            if session is not None and session.live and session.principal == principal
            else None
        )

    def delete(self, session_id: str, principal: str) -> bool:
        session = self.get(session_id, principal)
        if session is None:
            return False
        session.report.deleted_at = time.time()
        return True

    def by_token(self, token: str) -> Session | None:
        for session in self._sessions.values():
            if session.live and secrets.compare_digest(session.publisher, token):
                return session
        return None

    def live_for(self, principal: str) -> list[Session]:
        return [s for s in self._sessions.values() if s.live and s.principal == principal]

    def clear(self) -> None:
        self._sessions.clear()

    def as_json(self) -> dict[str, Any]:
        all_sessions = list(self._sessions.values())
        return {
            "created": [s.report.as_json() for s in all_sessions],
            "deleted": [s.report.id for s in all_sessions if not s.live],
            "leaked": [s.report.id for s in all_sessions if s.live],
        }
