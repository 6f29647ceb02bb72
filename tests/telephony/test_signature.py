"""SignatureChecker: webhooks and WebSocket upgrades, against the configured public URL."""

from __future__ import annotations

import inspect

import pytest
from multidict import MultiDict as AioMultiDict
from werkzeug.datastructures import MultiDict

from callbridge.telephony.signature import SignatureChecker, form_multidict

from .conftest import make_config, sign

# twilio-python's unit-test vector (token 12345), tests/unit/test_request_validator.py in
# https://github.com/twilio/twilio-python.
TP_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
# The worked example of Twilio's security docs, §4.1.
DOC_PARAMS = {
    "Digits": "1234",
    "To": "+18005551212",
    "From": "+14158675310",
    "Caller": "+14158675310",
    "CallSid": "CA1234567890ABCDE",
}
# A real inbound call from abroad carries many empty fields, all signed (§3.1).
INBOUND = [
    ("AccountSid", "AC" + "1" * 32),
    ("CallSid", "CA" + "2" * 32),
    ("CallStatus", "ringing"),
    ("Direction", "inbound"),
    ("From", "+237600000000"),
    ("To", "+15550000000"),
    ("FromCity", ""),
    ("FromState", ""),
    ("FromCountry", "CM"),
    ("CalledZip", ""),
    ("StirVerstat", ""),
]


def checker(public_url: str = "https://bridge.example.com", **kw: object) -> SignatureChecker:
    return SignatureChecker(make_config(public_url, **kw))  # type: ignore[arg-type]


class TestKnownVectors:
    def test_security_docs_example(self) -> None:
        """Twilio's documented example validates through public_url + path + query."""
        check = checker("https://example.com")
        sig = "L/OH5YylLD5NRKLltdqwSvS0BnU="
        assert check.check_http("/myapp.php", "foo=1&bar=2", DOC_PARAMS, sig)

    @pytest.mark.parametrize(
        ("public_url", "sig"),
        [
            ("https://mycompany.com", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            # Signed with the default port added: still accepted.
            ("https://mycompany.com", "kvajT1Ptam85bY51eRf/AJRuM3w="),
            ("http://mycompany.com", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ],
    )
    def test_twilio_python_vectors(self, public_url: str, sig: str) -> None:
        check = checker(public_url)
        assert check.check_http("/myapp.php", "foo=1&bar=2", TP_PARAMS, sig)

    def test_our_reference_signer_matches_the_docs(self) -> None:
        """The tests' own signer agrees with Twilio's example, so later tests mean something."""
        url = "https://example.com/myapp.php?foo=1&bar=2"
        assert sign(url, DOC_PARAMS.items()) == "L/OH5YylLD5NRKLltdqwSvS0BnU="


class TestHttp:
    URL = "https://bridge.example.com/twiml/client"

    def test_valid(self) -> None:
        assert checker().check_http("/twiml/client", "", dict(INBOUND), sign(self.URL, INBOUND))

    def test_invalid_signature(self) -> None:
        assert not checker().check_http("/twiml/client", "", dict(INBOUND), "AAAA" + "=" * 24)

    @pytest.mark.parametrize("sig", [None, ""])
    def test_missing_signature(self, sig: str | None) -> None:
        assert not checker().check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_a_raw_body_that_is_not_utf8_is_refused_not_raised(self) -> None:
        """Found by tests/fuzz: ``b"\\x80"`` as the raw body raised UnicodeDecodeError."""
        assert not checker().check_http("/twiml/client", "", b"\x80", "0")
        assert not checker().check_http("/twiml/client", "", b"CallSid=CA\xff", sign(self.URL))

    def test_wrong_token(self) -> None:
        sig = sign(self.URL, INBOUND, token="other")
        assert not checker().check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_tampered_value(self) -> None:
        sig = sign(self.URL, INBOUND)
        form = dict(INBOUND) | {"From": "+15559999999"}
        assert not checker().check_http("/twiml/client", "", form, sig)

    def test_added_parameter(self) -> None:
        sig = sign(self.URL, INBOUND)
        form = dict(INBOUND) | {"Extra": "1"}
        assert not checker().check_http("/twiml/client", "", form, sig)

    def test_empty_values_are_signed(self) -> None:
        """Dropping the empty fields (as some frameworks do) breaks the signature."""
        sig = sign(self.URL, INBOUND)
        without_empty = {k: v for k, v in INBOUND if v}
        assert checker().check_http("/twiml/client", "", dict(INBOUND), sig)
        assert not checker().check_http("/twiml/client", "", without_empty, sig)

    def test_the_slash_variant_drops_one_slash_only(self) -> None:
        """Found by tests/fuzz: for a path ending in "//", every trailing slash was dropped, so
        the slashes a signature covered could be moved into a forged field named "/"."""
        sig = sign("https://bridge.example.com//")
        assert checker().check_http("//", "", {}, sig)
        assert not checker().check_http("//", "", {"/": "/"}, sig)

    def test_other_path(self) -> None:
        sig = sign(self.URL, INBOUND)
        assert not checker().check_http("/twiml/operator/c1", "", dict(INBOUND), sig)

    def test_trailing_slash_variant(self) -> None:
        """A proxy that adds or strips a trailing slash does not break the check."""
        sig = sign(self.URL + "/", INBOUND)
        assert checker().check_http("/twiml/client", "", dict(INBOUND), sig)
        sig = sign(self.URL, INBOUND)
        assert checker().check_http("/twiml/client/", "", dict(INBOUND), sig)

    def test_query_string(self) -> None:
        sig = sign(self.URL + "?a=1&b=%2B2", INBOUND)
        assert checker().check_http("/twiml/client", "a=1&b=%2B2", dict(INBOUND), sig)
        assert checker().check_http("/twiml/client", b"a=1&b=%2B2", dict(INBOUND), sig)
        assert not checker().check_http("/twiml/client", "a=1&b=3", dict(INBOUND), sig)
        assert not checker().check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_query_string_must_not_be_silently_ignored(self) -> None:
        sig = sign(self.URL, INBOUND)
        assert not checker().check_http("/twiml/client", "x=1", dict(INBOUND), sig)


class TestRepeatedKeys:
    URL = "https://bridge.example.com/twilio/status/c1/operator"
    PAIRS = [("CallSid", "CA1"), ("Tag", "b"), ("Tag", "a"), ("Tag", "b"), ("Empty", "")]

    @pytest.mark.parametrize(
        "form",
        [
            MultiDict(PAIRS),
            AioMultiDict(PAIRS),
            PAIRS,
            {"CallSid": "CA1", "Tag": ["b", "a", "b"], "Empty": ""},
        ],
        ids=["werkzeug", "multidict", "pairs", "dict-of-lists"],
    )
    def test_every_value_is_signed(self, form: object) -> None:
        sig = sign(self.URL, self.PAIRS)
        assert checker().check_http("/twilio/status/c1/operator", "", form, sig)  # type: ignore[arg-type]

    def test_raw_body(self) -> None:
        """The raw form body, as bytes or text, keeps repeats, blanks and %-encoding exactly."""
        sig = sign(self.URL, [*self.PAIRS, ("From", "+1 555")])
        body = "CallSid=CA1&Tag=b&Tag=a&Tag=b&Empty=&From=%2B1+555"
        check = checker()
        assert check.check_http("/twilio/status/c1/operator", "", body.encode(), sig)
        assert check.check_http("/twilio/status/c1/operator", "", body, sig)
        assert not check.check_http("/twilio/status/c1/operator", "", body[: -len("&Empty=")], sig)

    def test_first_value_only_fails(self) -> None:
        """A plain dict of the first values loses a value and so must not validate."""
        sig = sign(self.URL, self.PAIRS)
        first_only = {"CallSid": "CA1", "Tag": "b", "Empty": ""}
        assert not checker().check_http("/twilio/status/c1/operator", "", first_only, sig)

    def test_form_multidict_keeps_repeats_and_empties(self) -> None:
        assert form_multidict(MultiDict(self.PAIRS)) == {
            "CallSid": ["CA1"],
            "Tag": ["b", "a", "b"],
            "Empty": [""],
        }


class TestPublicUrl:
    def test_request_host_is_not_an_input(self) -> None:
        """The URL comes from config only: the checks take a path, never a host or a scheme."""
        http = inspect.signature(SignatureChecker.check_http).parameters
        ws = inspect.signature(SignatureChecker.check_websocket).parameters
        assert list(http) == ["self", "path", "query_string", "form", "signature", "number_webhook"]
        assert list(ws) == ["self", "path", "query_string", "signature"]

    def test_internal_url_behind_proxy_is_rejected(self) -> None:
        """Signed for the internal address the proxy forwards to: not what Twilio used."""
        sig = sign("http://127.0.0.1:8000/twiml/client", INBOUND)
        assert not checker().check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_https_port_is_dropped_by_twilio(self) -> None:
        """Twilio signs https webhooks without the port, even when the URL has one."""
        check = checker("https://bridge.example.com:8443")
        sig = sign("https://bridge.example.com/twiml/client", INBOUND)
        assert check.check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_http_port_is_kept(self) -> None:
        check = checker("http://bridge.example.com:8080")
        sig = sign("http://bridge.example.com:8080/twiml/client", INBOUND)
        assert check.check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_default_https_port_both_ways(self) -> None:
        sig = sign("https://bridge.example.com:443/twiml/client", INBOUND)
        assert checker().check_http("/twiml/client", "", dict(INBOUND), sig)
        sig = sign("https://bridge.example.com/twiml/client", INBOUND)
        assert checker("https://bridge.example.com:443").check_http(
            "/twiml/client", "", dict(INBOUND), sig
        )

    def test_public_url_with_path_prefix(self) -> None:
        """A proxy mounting us under /bridge: Twilio signs the prefixed URL, we see the bare path."""
        check = checker("https://example.com/bridge/")
        sig = sign("https://example.com/bridge/twiml/client", INBOUND)
        assert check.check_http("/twiml/client", "", dict(INBOUND), sig)

    def test_scheme_must_match(self) -> None:
        sig = sign("http://bridge.example.com/twiml/client", INBOUND)
        assert not checker().check_http("/twiml/client", "", dict(INBOUND), sig)


class TestWebsocket:
    PATH = "/media/c1/caller"

    def test_wss_upgrade(self) -> None:
        sig = sign("wss://bridge.example.com" + self.PATH)
        assert checker().check_websocket(self.PATH, "", sig)

    def test_trailing_slash(self) -> None:
        """Twilio's docs: try a trailing slash when an upgrade does not verify."""
        sig = sign("wss://bridge.example.com" + self.PATH + "/")
        assert checker().check_websocket(self.PATH, "", sig)

    def test_default_port(self) -> None:
        sig = sign("wss://bridge.example.com:443" + self.PATH)
        assert checker("https://bridge.example.com:443").check_websocket(self.PATH, "", sig)

    def test_ws_for_http_public_url(self) -> None:
        sig = sign("ws://127.0.0.1:8000" + self.PATH)
        assert checker("http://127.0.0.1:8000").check_websocket(self.PATH, "", sig)

    def test_https_form_is_not_accepted(self) -> None:
        """Twilio signs the wss:// URL it dials; the https:// spelling is a different URL."""
        sig = sign("https://bridge.example.com" + self.PATH)
        assert not checker().check_websocket(self.PATH, "", sig)

    def test_other_leg_path(self) -> None:
        sig = sign("wss://bridge.example.com/media/c1/operator")
        assert not checker().check_websocket(self.PATH, "", sig)

    @pytest.mark.parametrize("sig", [None, "", "bm9wZQ=="])
    def test_missing_or_invalid(self, sig: str | None) -> None:
        assert not checker().check_websocket(self.PATH, "", sig)

    def test_query_string_either_way(self) -> None:
        url = "wss://bridge.example.com" + self.PATH
        assert checker().check_websocket(self.PATH, "t=1", sign(url + "?t=1"))
        assert checker().check_websocket(self.PATH, "t=1", sign(url, [("t", "1")]))
        assert not checker().check_websocket(self.PATH, "t=2", sign(url + "?t=1"))


class TestSwitches:
    def test_disabled_accepts_everything(self) -> None:
        check = checker(validate=False)
        assert not check.enabled
        assert check.check_http("/twiml/client", "", {}, None)
        assert check.check_websocket("/media/c1/caller", "", "junk")

    def test_no_token_fails_closed(self) -> None:
        check = checker(token=None)
        sig = sign("wss://bridge.example.com/media/c1/caller")
        assert not check.check_websocket("/media/c1/caller", "", sig)
        assert not check.check_http(
            "/twiml/client", "", {}, sign("https://bridge.example.com/twiml/client")
        )
