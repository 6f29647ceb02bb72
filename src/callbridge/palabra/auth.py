"""Where a Palabra connection goes and with which credential.

Two modes, chosen by which secrets are configured (API key wins when both are):

- **API key** (``PALABRA_API_KEY``): ``palabra.streaming_url`` with ``{random_hash}`` replaced by a
  fresh random segment per connection and the key in ``?token=``. No REST.
- **Legacy** (``PALABRA_CLIENT_ID``/``PALABRA_CLIENT_SECRET``): ``POST
  {api_base_url}/session-storage/session`` gives ``ws_url`` and a ``publisher`` token, used as
  ``{ws_url}?token={publisher}``; ``DELETE /session-storage/sessions/{id}`` afterwards, always.

Error handling: 401/403/404 from session-storage raise ``PalabraAuthError`` (never retried); 5xx and
transport errors are retried ``palabra.rest_retries`` times with backoff and then raise
``PalabraUnavailable``; other statuses raise ``PalabraUnavailable`` at once. Every error text names
the status. URLs are logged only through ``redact_url`` (the token is a credential).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeAlias
from urllib.parse import quote, urlsplit

import attrs
import httpx
import trio

from callbridge.config import Config, Secret
from callbridge.errors import PalabraAuthError, PalabraUnavailable
from callbridge.log import get_logger, redact_text

__all__ = [
    "AUTH_STATUSES",
    "AuthMode",
    "Endpoint",
    "LegacySession",
    "api_key_url",
    "auth_mode",
    "create_session",
    "delete_session",
    "open_endpoint",
    "redact_url",
    "with_token",
]

log = get_logger("callbridge.palabra.auth")

AuthMode: TypeAlias = Literal["api_key", "legacy"]

# Backoff between session-create retries: 0.5 s, 1 s, 2 s, then 4 s (the v1 SDK used 0.5 s and 1 s).
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 4.0
# A DELETE is a courtesy that must not hold up a hang-up: bounded, and it never raises.
_DELETE_TIMEOUT_S = 5.0
# Answers that mean the credentials are wrong: never retried.
AUTH_STATUSES = frozenset({401, 403, 404})
_CREATE_BODY = {"data": {"subscriber_count": 0, "intent": "api"}}


@attrs.frozen(repr=False)
class Endpoint:
    """One connection's target. ``url`` carries the token and must never be logged; use
    ``log_url``."""

    url: str
    mode: AuthMode
    session_id: str | None = None

    @property
    def log_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"Endpoint({self.log_url!r}, mode={self.mode!r})"


@attrs.frozen(repr=False)
class LegacySession:
    id: str
    ws_url: str
    publisher: str

    def __repr__(self) -> str:
        return f"LegacySession(ws_url={self.ws_url!r})"


def redact_url(url: str) -> str:
    return redact_text(url, ())


def auth_mode(config: Config) -> AuthMode:
    palabra = config.palabra
    if palabra.api_key:
        return "api_key"
    if palabra.client_id and palabra.client_secret:
        return "legacy"
    msg = "no Palabra credentials: set PALABRA_API_KEY, or PALABRA_CLIENT_ID and PALABRA_CLIENT_SECRET"
    raise PalabraAuthError(msg)


def with_token(url: str, token: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}token={quote(token, safe='')}"


def api_key_url(streaming_url: str, api_key: str) -> str:
    """A fresh random path segment per connection spreads connections over Palabra's servers."""
    return with_token(streaming_url.replace("{random_hash}", uuid.uuid4().hex), api_key)


def _reveal(secret: Secret | None, name: str) -> str:
    if not secret:
        msg = f"Palabra credential missing: {name}"
        raise PalabraAuthError(msg)
    return secret.reveal()


def _legacy_headers(config: Config) -> dict[str, str]:
    palabra = config.palabra
    return {
        "ClientId": _reveal(palabra.client_id, "PALABRA_CLIENT_ID"),
        "ClientSecret": _reveal(palabra.client_secret, "PALABRA_CLIENT_SECRET"),
    }


async def create_session(http: httpx.AsyncClient, config: Config) -> LegacySession:
    """POST a streaming session, retrying 5xx and transport errors with bounded backoff."""
    url = config.palabra.api_base_url.rstrip("/") + "/session-storage/session"
    attempts = config.palabra.rest_retries + 1
    last_problem = ""
    for attempt in range(attempts):
        if attempt:
            await trio.sleep(min(_BACKOFF_FIRST_S * 2 ** (attempt - 1), _BACKOFF_MAX_S))
        try:
            # Shielded (httpx's timeout bounds it): cancelled after Palabra created the session
            # but before we read its id, the session could never be deleted.
            with trio.CancelScope(shield=True):
                response = await http.post(
                    url,
                    json=_CREATE_BODY,
                    headers=_legacy_headers(config),
                    timeout=config.palabra.connect_timeout_s,
                )
        except httpx.TransportError as exc:
            last_problem = f"transport error {type(exc).__name__}"
            log.warning("palabra_session_retry", attempt=attempt + 1, problem=last_problem)
            continue
        if response.status_code >= 500:
            last_problem = f"HTTP {response.status_code}"
            log.warning("palabra_session_retry", attempt=attempt + 1, problem=last_problem)
            continue
        return _session_from(response)
    msg = f"Palabra session-storage unavailable after {attempts} attempts: {last_problem}"
    raise PalabraUnavailable(msg)


def _session_from(response: httpx.Response) -> LegacySession:
    status = response.status_code
    if status in AUTH_STATUSES:
        msg = (
            f"Palabra refused the client id/secret: HTTP {status} {_error_title(response)}".rstrip()
        )
        raise PalabraAuthError(msg, status=status)
    if status not in (200, 201):
        msg = f"Palabra session create failed: HTTP {status} {_error_title(response)}".rstrip()
        raise PalabraUnavailable(msg)
    try:
        body = response.json()
        data: dict[str, Any] = body["data"]
        publisher = data["publisher"]
        if isinstance(publisher, list):  # the older generation returned a list of tokens
            publisher = publisher[0]
        session = LegacySession(
            id=str(data["id"]),
            ws_url=str(data.get("ws_url") or data["control_url"]),
            publisher=str(publisher),
        )
    except (ValueError, KeyError, IndexError, TypeError):
        msg = f"Palabra session create: unexpected response body (HTTP {status})"
        raise PalabraUnavailable(msg) from None
    if body.get("ok") is False:
        msg = f"Palabra session create: ok=false (HTTP {status})"
        raise PalabraUnavailable(msg)
    return session


def _error_title(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return str(first.get("title") or first.get("detail") or "")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


async def delete_session(http: httpx.AsyncClient, config: Config, session_id: str) -> bool:
    """DELETE the session; logs and returns False on any failure, never raises (it runs on
    teardown paths). 404 counts as done: the session is gone either way."""
    url = f"{config.palabra.api_base_url.rstrip('/')}/session-storage/sessions/{quote(session_id, safe='')}"
    try:
        response = await http.delete(
            url, headers=_legacy_headers(config), timeout=_DELETE_TIMEOUT_S
        )
    except httpx.HTTPError as exc:
        log.warning("palabra_session_delete_failed", problem=type(exc).__name__)
        return False
    if response.status_code in (200, 202, 204, 404):
        log.info("palabra_session_deleted", status=response.status_code)
        return True
    log.warning("palabra_session_delete_failed", status=response.status_code)
    return False


@asynccontextmanager
async def open_endpoint(config: Config, http: httpx.AsyncClient) -> AsyncIterator[Endpoint]:
    """Yields where to connect. Resource handling: in legacy mode the session is deleted on exit,
    whatever happened inside (shielded from cancellation, bounded by a timeout)."""
    mode = auth_mode(config)
    palabra = config.palabra
    if mode == "api_key":
        key = _reveal(palabra.api_key, "PALABRA_API_KEY")
        yield Endpoint(api_key_url(palabra.streaming_url, key), mode)
        return
    session = await create_session(http, config)
    try:
        yield Endpoint(with_token(session.ws_url, session.publisher), mode, session.id)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(_DELETE_TIMEOUT_S + 1):
            await delete_session(http, config, session.id)
