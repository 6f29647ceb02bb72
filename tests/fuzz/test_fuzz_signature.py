"""Fuzzing the webhook form and signature path: the checker never raises, accepts exactly what
Twilio's algorithm signs, and refuses any change to it."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import assume, given
from hypothesis import strategies as st

from callbridge.telephony.signature import SignatureChecker, form_multidict
from tests.telephony.conftest import make_config, sign

from .strategies import wire_text

PUBLIC = "https://bridge.example.com"
CHECKER = SignatureChecker(make_config(PUBLIC))
# Our routes' paths are built from RFC 3986 unreserved characters and "/". (Not ";": twilio-python
# rebuilds the URL with urllib's urlparse/geturl, which drops an empty ";" parameter, so a path
# ending in ";" never validates. Fail-closed, and no route of ours has one.)
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/"
paths = st.sampled_from(
    ["/twiml/client", "/twiml/operator/abc", "/twilio/status/abc/operator", "/twiml/client/"]
) | st.text(UNRESERVED, max_size=30).map(lambda p: "/" + p)
pairs = st.lists(st.tuples(wire_text, wire_text), max_size=12)


@given(
    paths,
    st.one_of(st.binary(), st.text()),
    st.one_of(st.binary(), st.text()),
    st.text() | st.none(),
)
def test_anything_is_refused_without_raising(
    path: str, query: bytes | str, body: bytes | str, signature: str | None
) -> None:
    assert CHECKER.check_http(path, query, body, signature) is False


@given(paths, pairs)
def test_a_form_twilio_signed_is_accepted_in_every_shape(
    path: str, form: list[tuple[str, str]]
) -> None:
    signature = sign(PUBLIC + path, form)
    body = urlencode(form)
    assert CHECKER.check_http(path, b"", form, signature)
    assert CHECKER.check_http(path, b"", body, signature)
    assert CHECKER.check_http(path, b"", body.encode(), signature)


@given(paths, pairs, wire_text, wire_text)
def test_any_added_or_changed_field_breaks_the_signature(
    path: str, form: list[tuple[str, str]], name: str, value: str
) -> None:
    """Twilio signs the URL, names and values concatenated with no separator, so only a change
    to that text is detectable (``a=bc`` and ``ab=c`` sign alike: Twilio's design), for the URL
    and each trailing-slash variant the checker accepts."""
    signature = sign(PUBLIC + path, form)
    forged = [*form, (name, value)]
    assume(all(text != signed_text(path, form) for text in variant_texts(path, forged)))
    assert not CHECKER.check_http(path, b"", forged, signature)
    if form:
        changed = [(form[0][0], form[0][1] + "x"), *form[1:]]
        assume(all(text != signed_text(path, form) for text in variant_texts(path, changed)))
        assert not CHECKER.check_http(path, b"", changed, signature)


def signed_text(path: str, form: list[tuple[str, str]]) -> str:
    """What Twilio's algorithm feeds the HMAC: the URL, then names sorted, each with its values."""
    params = form_multidict(form)
    fields = "".join(name + v for name in sorted(params) for v in sorted(set(params[name])))
    return PUBLIC + path + fields


def variant_texts(path: str, form: list[tuple[str, str]]) -> list[str]:
    """The texts the checker would accept a signature over: the path, and one slash more or
    less (the documented trailing-slash variant)."""
    other = path[:-1] if path.endswith("/") and path != "/" else path + "/"
    return [signed_text(path, form), signed_text(other, form)]


@given(paths, st.binary() | st.text(), st.text() | st.none())
def test_websocket_upgrades_are_refused_without_raising(
    path: str, query: bytes | str, signature: str | None
) -> None:
    assert CHECKER.check_websocket(path, query, signature) is False
