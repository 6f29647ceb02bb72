"""WebAuth: token and session checks; safe redirects after login."""

from __future__ import annotations

import pytest

from callbridge.config import Secret
from callbridge.web.auth import SESSION_COOKIE, WebAuth, safe_next

AUTH = WebAuth.from_secret(Secret("tok-123"))


def test_token_and_bearer() -> None:
    assert AUTH.token_ok("tok-123")
    assert not AUTH.token_ok("tok-124") and not AUTH.token_ok("") and not AUTH.token_ok(None)
    assert AUTH.bearer_ok("Bearer tok-123") and AUTH.bearer_ok("bearer  tok-123 ")
    assert not AUTH.bearer_ok("Basic tok-123") and not AUTH.bearer_ok(None)


def test_session_cookie_is_derived_not_the_token() -> None:
    assert AUTH.session_value != "tok-123" and "tok-123" not in AUTH.session_value
    assert AUTH.session_ok(AUTH.session_value)
    assert not AUTH.session_ok(WebAuth.from_secret(Secret("other")).session_value)
    assert AUTH.authorized(None, {SESSION_COOKIE: AUTH.session_value})
    assert AUTH.authorized("Bearer tok-123", {})
    assert not AUTH.authorized(None, {SESSION_COOKIE: "tok-123"})


def test_repr_hides_the_token() -> None:
    assert "tok-123" not in repr(AUTH)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/calls/abc", "/calls/abc"),
        ("/calls?x=1", "/calls?x=1"),
        (None, "/calls"),
        ("", "/calls"),
        ("//evil.example/x", "/calls"),
        ("/\\evil.example", "/calls"),
        ("https://evil.example", "/calls"),
        ("/calls\r\nSet-Cookie: x", "/calls"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
