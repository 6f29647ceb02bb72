"""Credential checks for both auth generations (https://docs.palabra.ai, and the
PalabraAI/palabra-ai-python SDK: v1.x REST sessions, v2.x API keys).

REST: ``ClientId``/``ClientID`` + ``ClientSecret`` headers (header names are case-insensitive, and
arrive lower-cased here) or ``Authorization: Bearer <api key>``. Missing credentials -> 401,
wrong ones -> 403. WebSocket: ``?token=`` carrying an API key or a live session's ``publisher``
token (an ``Authorization: Bearer`` header on the upgrade is accepted too).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

import attrs

from callbridge.sim.palabra.options import SimOptions
from callbridge.sim.palabra.sessions import SessionStore

__all__ = ["AuthFailure", "RestAuth", "WsAuth", "check_rest_auth", "check_ws_token"]


@attrs.frozen
class RestAuth:
    mode: str  # "client_credentials" or "bearer"
    principal: str


@attrs.frozen
class AuthFailure:
    status: int
    title: str
    detail: str


@attrs.frozen
class WsAuth:
    mode: str  # "api_key" or "session"
    session_id: str | None = None


def _matches(value: str, candidates: tuple[str, ...]) -> bool:
    # compare_digest on every candidate: no early exit that leaks which one matched.
    return any([secrets.compare_digest(value.encode(), c.encode()) for c in candidates])


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_rest_auth(headers: Mapping[str, str], options: SimOptions) -> RestAuth | AuthFailure:
    """``headers`` with lower-case names."""
    token = bearer_token(headers)
    if token is not None:
        if _matches(token, options.api_keys):
            return RestAuth("bearer", "key:" + hashlib.sha256(token.encode()).hexdigest()[:16])
        return AuthFailure(403, "Forbidden", "Invalid API key")
    client_id = headers.get("clientid")
    client_secret = headers.get("clientsecret")
    if not client_id or not client_secret:
        return AuthFailure(401, "Unauthorized", "ClientId and ClientSecret headers are required")
    if _matches(client_id, (options.client_id,)) and _matches(
        client_secret, (options.client_secret,)
    ):
        return RestAuth("client_credentials", f"client:{client_id}")
    return AuthFailure(403, "Forbidden", "Invalid client credentials")


def check_ws_token(
    token: str | None, headers: Mapping[str, str], options: SimOptions, sessions: SessionStore
) -> WsAuth | None:
    token = token or bearer_token(headers)
    if not token:
        return None
    if _matches(token, options.api_keys):
        return WsAuth("api_key")
    session = sessions.by_token(token)
    if session is not None:
        session.report.connections += 1
        return WsAuth("session", session.report.id)
    return None
