"""``RequestLimits``: an ASGI middleware that refuses hostile form posts before the app reads them.

The routes that take a form body (Twilio's webhooks, ``POST /login``) need a few KiB. Without a
cap, one unsigned 16 MB POST of 1.6 million tiny fields to ``/twiml/client`` is buffered whole and
then split by ``urllib.parse.parse_qsl`` on the event loop, blocking every live call for seconds.

Why a middleware rather than Quart's settings alone (checked against Quart 0.20-0.22 source):

- ``MAX_CONTENT_LENGTH`` works (refused up front from ``Content-Length``, or once the streamed body
  passes it), so ``create_app`` sets it for every other route. But it is one value for the whole app,
  and Quart's connection task starts buffering the body before any ``before_request`` hook runs.
- ``MAX_FORM_PARTS`` and ``MAX_FORM_MEMORY_SIZE`` only reach the multipart parser; the
  ``application/x-www-form-urlencoded`` parser (what Twilio and browsers send) ignores both.
- A missing ``X-Twilio-Signature`` is only noticed by the view, after ``await request.form``.

So for ``POST`` to the capped routes this middleware, before the app sees the request:

1. refuses a Twilio webhook without an ``X-Twilio-Signature`` header (403), reading no body
   (Twilio signs every webhook: https://www.twilio.com/docs/usage/security);
2. refuses a ``Content-Length`` over the route's cap (413), reading no body;
3. reads the body itself, counting bytes and ``&`` separators as the chunks arrive, and refuses
   (413) as soon as either cap is passed, so at most one transport chunk (hypercorn reads 64 KiB)
   past the cap is ever read, and nothing is parsed; a body that takes longer than
   ``BODY_TIMEOUT_S`` to arrive is refused with 408;
4. hands the app the buffered body (at most the cap), which Quart then parses in microseconds.

Every refusal is answered with ``Connection: close`` (hypercorn closes a connection whose request
body was not read to the end anyway), logged once with the route and the client address, and
counted in ``counters`` (shown as ``rejected`` by ``/healthz``).
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import attrs
import orjson
import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from callbridge.log import get_logger

__all__ = [
    "BODY_TIMEOUT_S",
    "DEFAULT_MAX_BODY_BYTES",
    "LOGIN_LIMIT",
    "WEBHOOK_LIMIT",
    "FormLimit",
    "RequestLimits",
    "limit_for",
]

log = get_logger("callbridge.request_limits")


@attrs.frozen
class FormLimit:
    """Caps for one kind of form post: ``max_bytes`` of body, ``max_fields`` ``name=value`` pairs;
    ``signed`` routes must carry ``X-Twilio-Signature``."""

    max_bytes: int
    max_fields: int
    signed: bool = False


# A real voice webhook is 1-3 KiB in 20-40 fields (more with SIP headers); 16 KiB / 128 fields
# leaves room for fields Twilio adds without notice while refusing abuse.
WEBHOOK_LIMIT: Final = FormLimit(max_bytes=16 * 1024, max_fields=128, signed=True)
# The login form has two fields (token, next); logout none.
LOGIN_LIMIT: Final = FormLimit(max_bytes=4 * 1024, max_fields=8)
# Every other route takes no body; Quart's MAX_CONTENT_LENGTH refuses more than this.
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
# A few KiB arrive in milliseconds; Twilio itself gives up on a webhook after 15 s.
BODY_TIMEOUT_S: Final = 10.0

_SIGNATURE_HEADER: Final = b"x-twilio-signature"
_WEBHOOK_PREFIXES: Final = ("/twiml/", "/twilio/")
_LOGIN_PATHS: Final = frozenset({"/login", "/logout"})


def limit_for(method: str, path: str, *, require_signature: bool) -> FormLimit | None:
    """The caps for a request, or None when this middleware leaves it alone (GETs, WebSockets,
    routes without a form)."""
    if method != "POST":
        return None
    if path.startswith(_WEBHOOK_PREFIXES):
        return WEBHOOK_LIMIT if require_signature else attrs.evolve(WEBHOOK_LIMIT, signed=False)
    if path in _LOGIN_PATHS:
        return LOGIN_LIMIT
    return None


@attrs.frozen
class _Refusal:
    status: int
    reason: str  # the counter key and the log's ``reason``
    message: str


_NO_SIGNATURE: Final = _Refusal(403, "bad_signature", "invalid signature")
_TOO_LARGE: Final = _Refusal(413, "body_too_large", "request body too large")
_TOO_MANY_FIELDS: Final = _Refusal(413, "too_many_fields", "too many form fields")
_BAD_LENGTH: Final = _Refusal(400, "bad_content_length", "invalid Content-Length")
_TIMEOUT: Final = _Refusal(408, "body_timeout", "request body not received in time")


class _Disconnected:
    """The client went away mid-body: nobody to answer."""


class RequestLimits:
    """Wraps an ASGI app (``app.asgi_app = RequestLimits(app.asgi_app, ...)``).

    ``require_signature`` is ``twilio.validate_signatures``: when off, webhooks are still capped
    but a missing signature is left to the (disabled) checker. ``counters`` gets one count per
    refusal, by reason.
    """

    def __init__(
        self, app: ASGIFramework, *, require_signature: bool, counters: Counter[str]
    ) -> None:
        self._app = app
        self._require_signature = require_signature
        self._counters = counters

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"], require_signature=self._require_signature)
        if limit is None:
            await self._app(scope, receive, send)
            return
        checked: bytes | _Refusal | _Disconnected | None = _check_headers(scope, limit)
        if checked is None:
            checked = await _read_body(receive, limit)
        if isinstance(checked, _Disconnected):
            return
        if isinstance(checked, _Refusal):
            self._log_refusal(scope, checked, limit)
            await _send_refusal(send, checked)
            return
        await self._app(scope, _replay(checked, receive), send)

    def _log_refusal(self, scope: HTTPScope, refusal: _Refusal, limit: FormLimit) -> None:
        self._counters[refusal.reason] += 1
        client = scope.get("client")
        remote = client[0] if client else None
        if refusal is _NO_SIGNATURE:
            # The same event the webhook views log for a bad signature, so one alert covers both.
            log.warning("signature_rejected", route=scope["path"], present=False, remote=remote)
            return
        log.warning(
            "request_refused",
            route=scope["path"],
            reason=refusal.reason,
            remote=remote,
            content_length=_header(scope, b"content-length"),
            max_bytes=limit.max_bytes,
            max_fields=limit.max_fields,
        )


def _header(scope: HTTPScope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _check_headers(scope: HTTPScope, limit: FormLimit) -> _Refusal | None:
    """What the headers alone are enough to refuse."""
    if limit.signed and not _header(scope, _SIGNATURE_HEADER):
        return _NO_SIGNATURE
    length = _header(scope, b"content-length")
    if length is None:
        return None
    length = length.strip()
    if not (length.isascii() and length.isdigit()):
        return _BAD_LENGTH
    return _TOO_LARGE if int(length) > limit.max_bytes else None


async def _read_body(
    receive: ASGIReceiveCallable, limit: FormLimit
) -> bytes | _Refusal | _Disconnected:
    """The whole body, or why not, stopping at the first chunk that passes a cap."""
    body = bytearray()
    fields = 1
    with trio.move_on_after(BODY_TIMEOUT_S):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _Disconnected()
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > limit.max_bytes:
                return _TOO_LARGE
            # parse_qsl splits on "&" only; counting them bounds the pairs it would make.
            fields += chunk.count(b"&")
            if fields > limit.max_fields:
                return _TOO_MANY_FIELDS
            body += chunk
            if not message.get("more_body", False):
                return bytes(body)
    return _TIMEOUT


def _replay(body: bytes, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
    """A ``receive`` that yields the buffered body once, then whatever the client sends next
    (its ``http.disconnect``)."""
    pending = [body]

    async def replayed() -> ASGIReceiveEvent:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


async def _send_refusal(send: ASGISendCallable, refusal: _Refusal) -> None:
    payload = orjson.dumps({"error": refusal.reason, "message": refusal.message})
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})
