"""WebAuth: token and Bearer checks; safe redirects after login."""

from __future__ import annotations

import pytest

from callbridge.config import Secret
from callbridge.web.auth import WebAuth, safe_next

AUTH = WebAuth.from_secret(Secret("tok-123"))


def test_token_and_bearer() -> None:
    assert AUTH.token_ok("tok-123")
    assert not AUTH.token_ok("tok-124") and not AUTH.token_ok("") and not AUTH.token_ok(None)
    assert AUTH.bearer_ok("Bearer tok-123") and AUTH.bearer_ok("bearer  tok-123 ")
    assert not AUTH.bearer_ok("Basic tok-123") and not AUTH.bearer_ok(None)


def test_repr_hides_the_token() -> None:
    assert "tok-123" not in repr(AUTH)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/calls/abc", "/calls/abc"),
        ("/calls?x=1", "/calls?x=1"),
        ("/calls/abc?next=%2F%2Fevil", "/calls/abc?next=%2F%2Fevil"),  # encoded: harmless
        ("/calls/é", "/calls/é"),
        (None, "/calls"),
        ("", "/calls"),
        ("//evil.example/x", "/calls"),
        ("/\\evil.example", "/calls"),
        ("https://evil.example", "/calls"),
        ("/calls\r\nSet-Cookie: x", "/calls"),
        # Browsers strip tabs and newlines from URLs: each of these would become //evil.example.
        ("/\t/evil.example/x", "/calls"),
        ("/\n/evil.example/x", "/calls"),
        ("/\r/evil.example/x", "/calls"),
        # Other whitespace and control or format characters anywhere.
        ("/ /evil.example/x", "/calls"),
        ("/calls/a b", "/calls"),
        ("/calls\x00", "/calls"),
        ("/calls\x7f", "/calls"),
        ("/calls\x85", "/calls"),
        ("/calls\u00a0x", "/calls"),
        ("/calls\u2028x", "/calls"),
        ("/calls\u202ex", "/calls"),
        ("/calls\ufeff", "/calls"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
