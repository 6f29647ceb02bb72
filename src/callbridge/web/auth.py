"""Token authentication for the transcript pages and API.

One shared token (``CALLBRIDGE_WEB_TOKEN``) opens everything. The login form exchanges it for a
session cookie whose value is an HMAC of the token, so the token itself never sits in the browser,
every cookie dies when the token changes, and a restart keeps people logged in. API clients may
send ``Authorization: Bearer <token>`` instead. Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

import attrs

from callbridge.config import Secret

__all__ = ["SESSION_COOKIE", "SESSION_MAX_AGE_S", "WebAuth", "safe_next"]

SESSION_COOKIE: Final = "callbridge_session"
SESSION_MAX_AGE_S: Final = 7 * 86_400
_SESSION_CONTEXT: Final = b"callbridge web session v1"


@attrs.frozen(repr=False)
class WebAuth:
    _token: bytes
    _session: str

    @classmethod
    def from_secret(cls, secret: Secret) -> WebAuth:
        token = secret.reveal().encode()
        session = hmac.new(token, _SESSION_CONTEXT, hashlib.sha256).hexdigest()
        return cls(token=token, session=session)

    def __repr__(self) -> str:
        return "WebAuth(***)"

    @property
    def session_value(self) -> str:
        """The cookie value a successful login sets."""
        return self._session

    def token_ok(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self._token)

    def session_ok(self, cookie: str | None) -> bool:
        if not cookie:
            return False
        return hmac.compare_digest(cookie.encode(), self._session.encode())

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(credentials.strip())

    def authorized(self, authorization: str | None, cookies: Mapping[str, str]) -> bool:
        """A session cookie, or an ``Authorization: Bearer`` header value."""
        return self.session_ok(cookies.get(SESSION_COOKIE)) or self.bearer_ok(authorization)


def safe_next(target: str | None, default: str = "/calls") -> str:
    """Where to go after login: only a path on this site (no ``//host`` or scheme tricks)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ch in target for ch in "\r\n\\")
    ):
        return default
    return target
