"""``X-Twilio-Signature`` checks for webhooks and for the Media Streams WebSocket upgrade.

What Twilio signs (https://www.twilio.com/docs/usage/webhooks/webhooks-security): HMAC-SHA1, keyed
with the auth token, over the full URL it requested followed by every POST parameter sorted by name
(name then value, no separators, empty values included). The URL must be the one Twilio used, so it
is rebuilt from a configured base URL plus the request path, never from the request's ``Host``
header or scheme:
behind a TLS-terminating proxy or tunnel the daemon sees ``http://127.0.0.1:8000``, not what Twilio
dialed, and a ``Host`` header is whatever the sender chose.

Two bases, one per kind of URL (docs/cluster.md): the number's voice webhook (and its language
menu) is requested at ``server.public_url`` (load-balanced in cluster mode); every URL callbridge
hands Twilio for one call (the operator's TwiML, status callbacks, ``<Connect action>``, both
media streams) starts with the owning instance's ``cluster.instance_url``. Without a cluster both
are ``server.public_url``.

Variants accepted, each still an HMAC with our token, so none lets an unsigned request through:
- with and without the default port (``:443``/``:80``): twilio-python's ``RequestValidator`` tries
  both because Twilio's own signing is inconsistent about it;
- the path with and without a trailing ``/`` (proxies rewrite it; Twilio's docs suggest the slash
  for WebSocket upgrades);
- on the upgrade, only ``wss://`` (``ws://`` for an ``http`` public URL), with no parameters. A query
  string, which Twilio should have dropped, is tried both in the URL and as parameters (the way
  Twilio's own agent SDK validates).

Form parameters are taken exactly as received: repeated keys keep every value (the validator sorts
and de-duplicates them as twilio-python does) and empty values count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from callbridge.config import Config
from callbridge.telephony.twiml import to_websocket_url

__all__ = ["FormLike", "SignatureChecker", "form_multidict"]

# A received form: a mapping (values a string or a list of strings), a multi-dict (Werkzeug's
# ``getlist``, multidict's ``getall``; both are mappings), ``(name, value)`` pairs, or the raw
# ``application/x-www-form-urlencoded`` body.
FormLike: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]] | str | bytes


class _Params(dict[str, list[str]]):
    """The validator's multi-value protocol (``getall``) over a plain dict of lists."""

    def getall(self, name: str) -> list[str]:
        return self[name]


class SignatureChecker:
    """Checks Twilio signatures against the configured public and instance URLs.

    With ``twilio.validate_signatures = false`` every check passes (the caller warns at start).
    Without an auth token every check fails: fail closed rather than trust unsigned requests.
    """

    def __init__(self, config: Config) -> None:
        self._enabled = config.twilio.validate_signatures
        token = config.twilio.auth_token
        self._validator = RequestValidator(token.reveal()) if token else None
        self._number_base = config.public_url
        self._http_base = config.instance_url
        self._ws_base = to_websocket_url(config.instance_url)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def check_http(
        self,
        path: str,
        query_string: str | bytes,
        form: FormLike,
        signature: str | None,
        *,
        number_webhook: bool = False,
    ) -> bool:
        """True when ``signature`` signs ``base + path [+ ?query]`` with ``form``: ``base`` is
        ``server.public_url`` for the number's webhooks (``number_webhook``), else
        ``cluster.instance_url``.

        ``path`` is the request path as received (e.g. ``/twiml/client``); ``query_string`` the raw
        query without ``?``; ``form`` a mapping, a multi-dict (Werkzeug ``getlist`` or multidict
        ``getall``), ``(name, value)`` pairs, or the raw form-encoded body.
        """
        if not self._enabled:
            return True
        if not signature or self._validator is None:
            return False
        try:
            params = form_multidict(form)
        except UnicodeDecodeError:
            # Found by fuzzing: a raw body that is not UTF-8 raised out of the check. Twilio
            # sends UTF-8, so such a body cannot be what it signed.
            return False
        query = _text(query_string)
        base = self._number_base if number_webhook else self._http_base
        return any(
            self._validator.validate(url, params, signature)
            for url in _with_query(_path_variants(base, path), query)
        )

    def check_websocket(self, path: str, query_string: str | bytes, signature: str | None) -> bool:
        """True when ``signature`` signs the upgrade URL ``{instance_url as ws(s)}{path}``."""
        if not self._enabled:
            return True
        if not signature or self._validator is None:
            return False
        query = _text(query_string)
        for base in _path_variants(self._ws_base, path):
            for url, params in _websocket_forms(base, query):
                if self._validator.validate(url, params, signature):
                    return True
        return False


def form_multidict(form: FormLike) -> _Params:
    """Normalise a received form to ``{name: [values...]}``, keeping repeats and empty values.

    Error handling: raises ``UnicodeDecodeError`` for a raw ``bytes`` body that is not UTF-8."""
    result = _Params()
    if isinstance(form, str | bytes):
        # Exactly the pairs on the wire: repeats kept, blank values kept (parse_qsl drops them
        # unless told), "+" and %XX decoded as Twilio encoded them.
        body = form.decode("utf-8") if isinstance(form, bytes) else form
        form = parse_qsl(body, keep_blank_values=True)
    if hasattr(form, "getlist") and hasattr(form, "keys"):
        for name in form.keys():  # noqa: SIM118 - a multi-dict's keys() is not its iteration
            result[str(name)] = [str(v) for v in form.getlist(name)]
        return result
    if hasattr(form, "getall") and hasattr(form, "keys"):
        for name in form.keys():  # noqa: SIM118
            result[str(name)] = [str(v) for v in form.getall(name)]
        return result
    pairs: Iterable[tuple[Any, Any]] = form.items() if isinstance(form, Mapping) else form
    for name, value in pairs:
        values = [value] if isinstance(value, str) else list(value)
        result.setdefault(str(name), []).extend(str(v) for v in values)
    return result


def _text(query_string: str | bytes) -> str:
    if isinstance(query_string, bytes):
        # Raw request-line bytes: percent-encoded ASCII; latin-1 maps each byte to itself.
        return query_string.decode("latin-1")
    return query_string


def _path_variants(base: str, path: str) -> list[str]:
    url = base + path
    if path.endswith("/") and path != "/":
        # Exactly one slash: found by fuzzing, rstrip("/") turned "//" into "", and since Twilio
        # signs URL and fields with no separator between them, the stripped slashes could then
        # be supplied as a forged field named "/".
        return [url, url[:-1]]
    return [url, url + "/"]


def _with_query(urls: Iterable[str], query: str) -> Iterator[str]:
    for url in urls:
        yield f"{url}?{query}" if query else url


def _websocket_forms(url: str, query: str) -> Iterator[tuple[str, _Params]]:
    yield (f"{url}?{query}" if query else url), _Params()
    if query:
        yield url, form_multidict(parse_qsl(query, keep_blank_values=True))
