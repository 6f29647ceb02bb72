"""REST routes: legacy ``/session-storage`` and the simulator's own ``/_sim`` control endpoints.

- ``POST /session-storage/session`` -> 201 ``{"ok": true, "data": {publisher, subscriber: [],
  webrtc_room_name, webrtc_url, ws_url, intent, id, organization}}``
- ``GET /session-storage/sessions`` -> ``{"ok": true, "data": [{id, created_at, updated_at,
  expires_at}]}``; ``GET /session-storage/sessions/{id}`` -> ``{"ok": true, "data": {...}}``
- ``DELETE /session-storage/sessions/{id}`` -> 204
- errors: ``{"ok": false, "errors": [{title, detail, error_code, instance, status, type}]}``
- ``GET /_sim/report``, ``GET|POST /_sim/faults``, ``POST /_sim/reset``, ``GET /healthz``
"""

from __future__ import annotations

from typing import Any

import orjson

from callbridge.log import get_logger
from callbridge.sim.palabra.auth import AuthFailure, check_rest_auth
from callbridge.sim.palabra.http11 import HttpRequest, HttpResponse
from callbridge.sim.palabra.state import SimState

__all__ = ["handle_rest"]

log = get_logger("callbridge.sim.palabra")
_SESSIONS_PREFIX = "/session-storage/sessions/"


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body))


def _error(status: int, title: str, detail: str, instance: str) -> HttpResponse:
    error = {
        "title": title,
        "detail": detail,
        "error_code": status,
        "instance": instance,
        "status": status,
        "type": "about:blank",
    }
    return _json(status, {"ok": False, "errors": [error]})


async def handle_rest(state: SimState, request: HttpRequest) -> HttpResponse:
    path, method = request.path, request.method
    if path.startswith("/_sim/") or path == "/healthz":
        return _control(state, request)
    if path == "/session-storage/session" and method == "POST":
        return _create_session(state, request)
    if path == "/session-storage/sessions" and method == "GET":
        return _list_sessions(state, request)
    if path.startswith(_SESSIONS_PREFIX) and method in ("GET", "DELETE"):
        return _one_session(state, request, path.removeprefix(_SESSIONS_PREFIX))
    return _error(404, "Not Found", f"no route for {method} {path}", path)


def _auth_error(failure: AuthFailure, path: str) -> HttpResponse:
    return _error(failure.status, failure.title, failure.detail, path)


def _create_session(state: SimState, request: HttpRequest) -> HttpResponse:
    if state.faults.take_session_5xx():
        log.info("sim_session_5xx")
        return _error(503, "Service Unavailable", "simulated failure (session_5xx)", request.path)
    auth = check_rest_auth(request.headers, state.options)
    if isinstance(auth, AuthFailure):
        log.info("sim_session_auth_failed", status=auth.status)
        return _auth_error(auth, request.path)
    body: Any = {}
    if request.body.strip():
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _error(422, "Unprocessable Entity", "body is not valid JSON", request.path)
    data = body.get("data") if isinstance(body, dict) else None
    intent = str(data.get("intent", "api")) if isinstance(data, dict) else "api"
    session = state.sessions.create(
        principal=auth.principal, auth_mode=auth.mode, intent=intent, base_ws=state.ws_base
    )
    log.info("sim_session_created", auth_mode=auth.mode, intent=intent)
    return _json(
        201,
        {
            "ok": True,
            "data": {
                "publisher": session.publisher,
                "subscriber": [],
                "webrtc_room_name": session.report.id[-8:],
                "webrtc_url": f"{state.ws_base}/livekit/",
                "ws_url": session.ws_url,
                "intent": intent,
                "id": session.report.id,
                "organization": "sim-organization",
            },
        },
    )


def _list_sessions(state: SimState, request: HttpRequest) -> HttpResponse:
    auth = check_rest_auth(request.headers, state.options)
    if isinstance(auth, AuthFailure):
        return _auth_error(auth, request.path)
    live = [s.listing() for s in state.sessions.live_for(auth.principal)]
    return _json(200, {"ok": True, "data": live, "next_page_token": ""})


def _one_session(state: SimState, request: HttpRequest, session_id: str) -> HttpResponse:
    auth = check_rest_auth(request.headers, state.options)
    if isinstance(auth, AuthFailure):
        return _auth_error(auth, request.path)
    session = state.sessions.get(session_id, auth.principal)
    if session is None:
        return _error(404, "Not Found", "session not found", request.path)
    if request.method == "GET":
        return _json(200, {"ok": True, "data": session.listing()})
    state.sessions.delete(session_id, auth.principal)
    log.info("sim_session_deleted")
    return HttpResponse(204)


def _update_faults(state: SimState, changes: Any) -> HttpResponse:
    """``{"connection": "c3", ...}`` aims the faults at that live connection alone; without
    ``connection`` they are the simulator-wide ones."""
    target = changes.pop("connection", None) if isinstance(changes, dict) else None
    if target is None:
        problems = state.faults.update(changes)
        faults = state.faults
    else:
        problems = state.update_connection_faults(str(target), changes)
        faults = state.faults_for(str(target))
    if problems:
        return _json(400, {"ok": False, "problems": problems})
    log.info("sim_faults_updated", connection=target, faults=faults.as_json())
    return _json(200, {"ok": True, "faults": faults.as_json()})


def _control(state: SimState, request: HttpRequest) -> HttpResponse:
    route = (request.method, request.path)
    if route == ("GET", "/healthz"):
        return _json(200, {"ok": True})
    if route == ("GET", "/_sim/report"):
        return _json(200, state.report())
    if route == ("GET", "/_sim/faults"):
        return _json(200, {"ok": True, "faults": state.faults.as_json()})
    if route == ("POST", "/_sim/faults"):
        try:
            changes = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            return _json(400, {"ok": False, "problems": ["body is not valid JSON"]})
        return _update_faults(state, changes)
    if route == ("POST", "/_sim/reset"):
        state.reset()
        return _json(200, {"ok": True})
    return _json(404, {"ok": False, "problems": [f"no route for {request.method} {request.path}"]})
