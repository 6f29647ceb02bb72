"""``create_web_blueprint``: transcript pages, the JSON API, exports and live feeds, behind a token.

Routes (all need the token except ``/login``, ``/logout``, ``/transcription`` and static files):

- ``GET /login`` form, ``POST /login`` (field ``token``, optional ``next``), ``POST /logout``
- ``GET /transcription`` -> 302 ``/calls`` (the seed's URL)
- ``GET /calls`` live call list, ``GET /calls/<id>`` live transcript of one call
- ``GET /api/calls``, ``GET /api/calls/<id>``, ``GET /api/calls/<id>/transcript.{json,txt,vtt}``
- ``GET /api/calls/<id>/feed`` and ``GET /api/feed`` (all calls): server-sent events; a reconnect
  sends ``Last-Event-ID`` (or ``?last_event_id=``) and gets what it missed
- ``GET /api/session``: 200 when authenticated (pages use it to tell "logged out" from "offline")

With no token configured every one of these answers 404 with a message saying so: the pages are
never open to everyone.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import orjson
from quart import Blueprint, Response, redirect, render_template, request, send_from_directory
from quart.typing import ResponseReturnValue

from callbridge.config import Config
from callbridge.log import get_logger
from callbridge.transcripts.export import EXPORT_FORMATS, render_export
from callbridge.transcripts.hub import TranscriptHub
from callbridge.web.auth import SESSION_COOKIE, WebAuth, safe_next
from callbridge.web.sessions import SESSION_MAX_AGE_S, SessionCookies
from callbridge.web.sse import sse_stream
from callbridge.web.throttle import AuthThrottle

__all__ = ["CONTENT_SECURITY_POLICY", "create_web_blueprint"]

log = get_logger("callbridge.web")

STATIC_DIR: Final = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Call ids are token_urlsafe(16); anything else is refused before it reaches a query or a page.
_CALL_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PUBLIC_ENDPOINTS: Final = frozenset(
    {"login_form", "login", "logout", "transcription", "static_file"}
)

_ROUTES: Final = (
    ("/login", "login_form", ("GET",)),
    ("/login", "login", ("POST",)),
    ("/logout", "logout", ("POST",)),
    ("/transcription", "transcription", ("GET",)),
    ("/calls", "calls_page", ("GET",)),
    ("/calls/<call_id>", "call_page", ("GET",)),
    ("/web/static/<path:filename>", "static_file", ("GET",)),
    ("/api/session", "api_session", ("GET",)),
    ("/api/calls", "api_calls", ("GET",)),
    ("/api/calls/<call_id>", "api_call", ("GET",)),
    ("/api/calls/<call_id>/transcript.<fmt>", "api_transcript", ("GET",)),
    ("/api/calls/<call_id>/feed", "api_call_feed", ("GET",)),
    ("/api/feed", "api_feed", ("GET",)),
)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status=status, mimetype="application/json")


def _error(status: int, error: str, message: str) -> Response:
    return _json({"error": error, "message": message}, status)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def create_web_blueprint(
    hub: TranscriptHub, config: Config, *, throttle: AuthThrottle | None = None
) -> Blueprint:
    """The transcript web UI and API; see the module docstring for the routes. ``throttle``
    brakes failed authentication (a default ``AuthThrottle`` when None)."""
    bp = Blueprint("transcripts_web", __name__, template_folder="templates")
    token = config.server.web_token
    if not token:
        log.warning(
            "web_disabled",
            reason="CALLBRIDGE_WEB_TOKEN is not set",
            effect="transcript pages and API answer 404",
        )
        _add_disabled_routes(bp)
        return bp
    log.info("web_enabled", pages="/calls", api="/api/calls")
    sessions = SessionCookies(token, Path(config.server.state_dir))
    auth = WebAuth.from_secret(token)
    _Routes(hub, config, auth, sessions, throttle or AuthThrottle()).register(bp)
    return bp


def _add_disabled_routes(bp: Blueprint) -> None:
    async def disabled(**_: str) -> ResponseReturnValue:
        message = "transcript pages and API are disabled: set CALLBRIDGE_WEB_TOKEN to enable them"
        if _is_api(request.path):
            return _error(404, "disabled", message)
        return Response(message + "\n", status=404, mimetype="text/plain")

    for rule, endpoint, methods in _ROUTES:
        bp.add_url_rule(rule, endpoint, disabled, methods=list(methods))


class _Routes:
    """The view functions, closed over one hub, config and auth (no module-level state)."""

    def __init__(
        self,
        hub: TranscriptHub,
        config: Config,
        auth: WebAuth,
        sessions: SessionCookies,
        throttle: AuthThrottle,
    ) -> None:
        self._hub = hub
        self._config = config
        self._auth = auth
        self._sessions = sessions
        self._throttle = throttle

    def register(self, bp: Blueprint) -> None:
        bp.before_request(self._require_auth)
        bp.after_request(_security_headers)
        for rule, endpoint, methods in _ROUTES:
            view: Callable[..., Awaitable[ResponseReturnValue]] = getattr(self, endpoint)
            bp.add_url_rule(rule, endpoint, view, methods=list(methods))

    async def _require_auth(self) -> ResponseReturnValue | None:
        endpoint = (request.endpoint or "").rpartition(".")[2]
        if endpoint in _PUBLIC_ENDPOINTS:
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if self._sessions.session_id(cookie) is not None:
            return None
        authorization = request.headers.get("Authorization")
        client = _client()
        if authorization:
            wait_s = self._throttle.retry_after(client)
            if wait_s:
                return _too_many_failures(wait_s)
            if self._auth.bearer_ok(authorization):
                return None
        if authorization or cookie:
            via = "bearer" if authorization else "cookie"
            log.warning("web_auth_failed", remote=client, route=request.path, via=via)
            await self._throttle.failed(client, guess=bool(authorization))
        if _is_api(request.path):
            response = _error(401, "unauthorized", "a valid token is required (cookie or Bearer)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="callbridge"'
            return response
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/')}")

    # --- login ------------------------------------------------------------------------------------

    async def login_form(self) -> ResponseReturnValue:
        return await render_template(
            "transcripts_login.html", next=safe_next(request.args.get("next")), error=None
        )

    async def login(self) -> ResponseReturnValue:
        form = await request.form
        target = safe_next(form.get("next"))
        client = _client()
        wait_s = self._throttle.retry_after(client)
        if wait_s:
            error = f"Too many wrong tokens: try again in {math.ceil(wait_s)} s."
            page = await render_template("transcripts_login.html", next=target, error=error)
            return page, 429, {"Retry-After": str(math.ceil(wait_s))}
        if not self._auth.token_ok(form.get("token")):
            log.warning("web_login_failed", remote=client)
            await self._throttle.failed(client, guess=True)
            page = await render_template(
                "transcripts_login.html", next=target, error="Wrong token."
            )
            return page, 401
        log.info("web_login", remote=client)
        response = redirect(target)
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.issue(),
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="Strict",
            secure=_is_https(),
            path="/",
        )
        return response

    async def logout(self) -> ResponseReturnValue:
        if await self._sessions.revoke(request.cookies.get(SESSION_COOKIE)):
            log.info("web_logout", remote=_client())
        response = redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response

    # --- pages ------------------------------------------------------------------------------------

    async def transcription(self) -> ResponseReturnValue:
        return redirect("/calls")

    async def calls_page(self) -> ResponseReturnValue:
        return await render_template("transcripts_calls.html")

    async def call_page(self, call_id: str) -> ResponseReturnValue:
        if not _CALL_ID.fullmatch(call_id):
            return Response("no such call\n", status=404, mimetype="text/plain")
        return await render_template("transcripts_call.html", call_id=call_id)

    async def static_file(self, filename: str) -> ResponseReturnValue:
        response = await send_from_directory(STATIC_DIR, filename)
        response.headers["Cache-Control"] = "no-cache"
        return response

    # --- API --------------------------------------------------------------------------------------

    async def api_session(self) -> ResponseReturnValue:
        return _json({"ok": True})

    async def api_calls(self) -> ResponseReturnValue:
        return _json({"calls": await self._hub.list_calls()})

    async def api_call(self, call_id: str) -> ResponseReturnValue:
        found = await self._find(call_id)
        return found if isinstance(found, Response) else _json(found)

    async def api_transcript(self, call_id: str, fmt: str) -> ResponseReturnValue:
        if fmt not in EXPORT_FORMATS:
            formats = ", ".join(EXPORT_FORMATS)
            return _error(404, "unknown_format", f"transcript formats are {formats}")
        found = await self._find(call_id)
        if isinstance(found, Response):
            return found
        response = Response(render_export(fmt, found), mimetype=EXPORT_FORMATS[fmt])
        response.headers["Content-Disposition"] = f'inline; filename="call-{call_id}.{fmt}"'
        return response

    async def _find(self, call_id: str) -> dict[str, Any] | Response:
        """The stored call, or the JSON error response to send instead."""
        if not _CALL_ID.fullmatch(call_id):
            return _error(400, "bad_call_id", "call ids are 1-64 of A-Z a-z 0-9 _ -")
        found = await self._hub.get_call(call_id)
        if found is None:
            return _error(404, "not_found", f"no call with id {call_id}")
        return found

    async def api_call_feed(self, call_id: str) -> ResponseReturnValue:
        if not _CALL_ID.fullmatch(call_id):
            return _error(400, "bad_call_id", "call ids are 1-64 of A-Z a-z 0-9 _ -")
        return self._feed_response(call_id)

    async def api_feed(self) -> ResponseReturnValue:
        return self._feed_response(None)

    def _feed_response(self, call_id: str | None) -> Response:
        last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        body = _feed_body(self._hub, call_id, last_id, self._config.transcripts.heartbeat_s)
        response = Response(body, mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"  # tell a proxy in front not to buffer
        response.timeout = None  # a feed lasts as long as the page is open
        return response


async def _feed_body(
    hub: TranscriptHub, call_id: str | None, last_id: str | None, heartbeat_s: float
) -> AsyncIterator[bytes]:
    # aclosing: when the client goes away quart closes this generator; the inner one must be
    # closed right then too, not left to the garbage collector.
    async with (
        hub.open_feed(call_id, last_id) as feed,
        aclosing(sse_stream(feed, heartbeat_s)) as frames,
    ):
        async for chunk in frames:
            yield chunk


def _client() -> str:
    """The peer's address from the ASGI scope (never a header a client can set)."""
    peer = request.scope.get("client")
    return str(peer[0]) if peer else "unknown"


def _too_many_failures(wait_s: float) -> Response:
    seconds = math.ceil(wait_s)
    message = f"too many failed attempts from this address: retry in {seconds} s"
    if _is_api(request.path):
        response = _error(429, "too_many_failures", message)
    else:
        response = Response(message + "\n", status=429, mimetype="text/plain")
    response.headers["Retry-After"] = str(seconds)
    return response


def _is_https() -> bool:
    return request.scheme == "https" or request.headers.get("X-Forwarded-Proto") == "https"


async def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
    return response
