"""Token authentication for the transcript pages and API.

One shared token (``CALLBRIDGE_WEB_TOKEN``) opens everything. The login form exchanges it for a
session cookie (``callbridge.web.sessions``: one signed id per login, revoked by logging out), so
the token itself never sits in the browser. API clients may send ``Authorization: Bearer <token>``
instead. Every comparison is constant-time; failures are slowed and rate-limited per client address
(``callbridge.web.throttle``).
"""

from __future__ import annotations

import hmac
import unicodedata
from typing import Final

import attrs

from callbridge.config import Secret

__all__ = ["SESSION_COOKIE", "WebAuth", "safe_next"]

SESSION_COOKIE: Final = "callbridge_session"


@attrs.frozen(repr=False)
class WebAuth:
    _token: bytes

    @classmethod
    def from_secret(cls, secret: Secret) -> WebAuth:
        return cls(token=secret.reveal().encode())

    def __repr__(self) -> str:
        return "WebAuth(***)"

    def token_ok(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self._token)

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(credentials.strip())


def safe_next(target: str | None, default: str = "/calls") -> str:
    """Where to go after login: only a path on this site.

    Refused (``default`` instead): anything not starting with one ``/``, a ``//host`` or ``/\\host``
    network path, any backslash, and any whitespace or control character anywhere. Browsers drop
    tabs and newlines inside a URL before resolving it (https://url.spec.whatwg.org/#concept-basic-url-parser),
    so ``"/\\t/evil.example/x"`` would otherwise land on ``//evil.example/x``: an open redirect.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(_unsafe(ch) for ch in target):
        return default
    return target


def _unsafe(ch: str) -> bool:
    # Whitespace (tab, newline, NBSP, U+2028, ...) and control/format/unassigned characters
    # (categories Cc, Cf, Cs, Co, Cn: NUL, DEL, bidi overrides, ...).
    return ch.isspace() or unicodedata.category(ch).startswith("C")
