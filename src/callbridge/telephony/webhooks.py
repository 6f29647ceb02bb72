"""Twilio-facing routes: the voice webhooks and the media WebSockets.

Every request is signature-checked against ``server.public_url`` before anything else happens;
a missing or bad signature is a 403 and a warning naming the route (never the token). Handlers
answer fast (Twilio waits 15 s at most): they only reserve capacity, hand events to the call, and
build TwiML. The slow work (REST calls, Palabra) runs in the call's own tasks.

Unknown call ids get 404 (and a refused upgrade). Late webhooks for recently ended calls (status
callbacks after our own hang-up, ``<Connect action>``) are answered calmly: 204 or ``<Hangup/>``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from quart import Blueprint, Response, request, websocket

from callbridge.calls.legs import pump_websocket
from callbridge.calls.session import CallSession
from callbridge.calls.supervisor import CallSupervisor, EndedCall
from callbridge.config import Config, pick_prompt
from callbridge.log import get_logger
from callbridge.roles import Role
from callbridge.telephony.signature import SignatureChecker
from callbridge.telephony.status import StatusCallbackError, parse_status_callback
from callbridge.telephony.twiml import (
    connect_stream_twiml,
    hangup_twiml,
    media_stream_url,
    say_and_hangup_twiml,
    stream_ended_url,
)

__all__ = ["create_webhooks_blueprint"]

log = get_logger("callbridge.telephony.webhooks")

SIGNATURE_HEADER = "X-Twilio-Signature"


def _twiml(body: str) -> Response:
    return Response(body, status=200, content_type="text/xml; charset=utf-8")


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status=status, content_type="application/json")


def create_webhooks_blueprint(
    config: Config, supervisor: CallSupervisor, checker: SignatureChecker, counters: Counter[str]
) -> Blueprint:
    bp = Blueprint("twilio", __name__)

    async def verified_form() -> Any:
        """The request's form if its signature is valid, else None (already logged and counted)."""
        form = await request.form
        if checker.check_http(
            request.path, request.query_string, form, request.headers.get(SIGNATURE_HEADER)
        ):
            return form
        counters["bad_signature"] += 1
        log.warning(
            "signature_rejected",
            route=request.path,
            present=SIGNATURE_HEADER in request.headers,
            remote=request.remote_addr,
        )
        return None

    async def call_request(
        call_id: str, role: str
    ) -> tuple[Any, CallSession | EndedCall, Role] | Response:
        """A signed webhook about a live or recently ended call: its form, the call and the
        party, or the error response to send (403 bad signature, 404 unknown call or role)."""
        form = await verified_form()
        if form is None:
            return _error(403, "invalid signature")
        session = supervisor.find_any(call_id)
        if session is None or role not in Role.__members__.values():
            return _unknown(counters, call_id, request.path)
        return form, session, Role(role)

    @bp.post("/twiml/client")
    async def incoming_call() -> Response:
        form = await verified_form()
        if form is None:
            return _error(403, "invalid signature")
        caller_sid = form.get("CallSid", "")
        if not caller_sid:
            counters["bad_request"] += 1
            return _error(400, "CallSid missing")
        language = config.languages.caller
        session = supervisor.admit(caller_sid=caller_sid, caller_number=form.get("From", ""))
        if session is None:
            counters["refused_calls"] += 1
            return _twiml(
                say_and_hangup_twiml(pick_prompt(config.prompts.busy, language), language)
            )
        return _twiml(
            _stream_twiml(
                config,
                session.record.id,
                Role.CALLER,
                pick_prompt(config.prompts.greeting, language),
                language,
            )
        )

    @bp.post("/twiml/operator/<call_id>")
    async def operator_answered(call_id: str) -> Response:
        checked = await call_request(call_id, Role.OPERATOR.value)
        if isinstance(checked, Response):
            return checked
        form, session, _ = checked
        if not session.operator_answered(form.get("CallSid", "")):
            log.info("operator_answer_refused", call_id=call_id, ended=session.ended)
            return _twiml(hangup_twiml())
        language = config.languages.operator
        intro = pick_prompt(config.prompts.operator_intro, language)
        return _twiml(_stream_twiml(config, session.record.id, Role.OPERATOR, intro, language))

    @bp.post("/twilio/status/<call_id>/<role>")
    async def status_callback(call_id: str, role: str) -> Response:
        checked = await call_request(call_id, role)
        if isinstance(checked, Response):
            return checked
        form, session, party = checked
        try:
            update = parse_status_callback(form)
        except StatusCallbackError as exc:
            counters["bad_request"] += 1
            log.warning("status_callback_invalid", call_id=call_id, error=str(exc))
            return _error(400, str(exc))
        log.info(
            "status_callback",
            call_id=call_id,
            role=role,
            call_sid=update.call_sid,
            status=update.call_status,
            sequence=update.sequence,
        )
        session.on_status(party, update)
        return Response("", status=204)

    @bp.post("/twiml/stream-ended/<call_id>/<role>")
    async def stream_ended(call_id: str, role: str) -> Response:
        checked = await call_request(call_id, role)
        if isinstance(checked, Response):
            return checked
        _, session, party = checked
        # We answer <Hangup/>, so that party is gone: a live call ends now (a stream whose
        # upgrade was refused has no stop or close to tell it). Ended calls just get the TwiML.
        session.stream_ended(party)
        return _twiml(hangup_twiml())

    @bp.websocket("/media/<call_id>/<role>")
    async def media(call_id: str, role: str) -> Response | None:
        signature = websocket.headers.get(SIGNATURE_HEADER)
        if not checker.check_websocket(websocket.path, websocket.query_string, signature):
            counters["bad_signature"] += 1
            log.warning(
                "signature_rejected",
                route=websocket.path,
                present=signature is not None,
                upgrade=True,
            )
            return _error(403, "invalid signature")
        session = supervisor.find(call_id)
        if session is None or role not in Role.__members__.values():
            return _unknown(counters, call_id, websocket.path)
        leg = session.attach_leg(Role(role))
        if leg is None:
            counters["media_refused"] += 1
            log.warning("media_refused", call_id=call_id, role=role, ended=session.ended)
            return _error(409, "media leg not expected")
        await websocket.accept()
        await pump_websocket(leg, websocket.receive, websocket.send)
        return None

    return bp


def _stream_twiml(config: Config, call_id: str, role: Role, say: str, language: str) -> str:
    return connect_stream_twiml(
        say_text=say or None,
        say_lang=language,
        stream_url=media_stream_url(config.public_url, call_id, role.value),
        action_url=stream_ended_url(config.public_url, call_id, role.value),
        parameters={"call_id": call_id, "role": role.value},
    )


def _unknown(counters: Counter[str], call_id: str, route: str) -> Response:
    counters["unknown_call"] += 1
    log.warning("unknown_call", call_id=call_id, route=route)
    return _error(404, "unknown call")
