"""Twilio-facing routes: the voice webhooks and the media WebSockets.

Routes (Twilio requests every one of them; none is for people):

- ``POST /twiml/client``: the number's voice webhook; decides the caller's language
  (``routing.LanguageRules``), admits the call (or the busy prompt) and answers the greeting and
  the caller's ``<Connect><Stream>``, both in the caller's language; or, when the rules say the
  caller must be asked, answers the keypad language menu and admits nothing yet. A draining
  cluster instance that another instance can take the call from (``handoff``) answers
  ``<Redirect>`` to the number's webhook instead of the busy prompt: Twilio asks the balancer
  again, which picks another instance (a plain round-robin proxy does; a health-checked one
  has already taken the draining instance out);
- ``POST /twiml/client/language``: the menu's ``<Gather action>`` (a key, ``Digits``) or its
  final ``<Redirect>`` (no key): decides with the key, then admits as above;
- ``POST /twiml/operator/<call>``: the operator answered; their ``<Connect><Stream>``;
- ``POST /twilio/status/<call>/<role>``: status callbacks of the operator's call;
- ``POST /twiml/stream-ended/<call>/<role>``: a ``<Connect>`` ended (its ``action``);
- (``WS /media/<call>/<role>``, the Media Streams, are served beside the framework by
  ``media_socket.MediaRoute``.)

Every request is signature-checked before anything else happens: the number's voice webhook and
its language menu (Twilio requests both from the number's own flow, through the load balancer in
cluster mode) against ``server.public_url``; everything about one call (the operator's TwiML,
status callbacks, ``<Connect action>``) against this instance's ``cluster.instance_url``, the URL
it handed Twilio for that call (without a cluster, the same URL). A missing or bad signature is a
403 and a warning naming the route (never the token). Handlers
answer fast (Twilio waits 15 s at most): they only reserve capacity, hand events to the call, and
build TwiML. The slow work (REST calls, Palabra) runs in the call's own tasks.

Twilio runs the answer of ``/twiml/*`` as TwiML, and a non-2xx answer or a body that is not TwiML
makes it play "an application error has occurred" to a person (error 11200,
https://www.twilio.com/docs/api/errors/11200). So those routes answer TwiML on every path: an
unknown or ended call, a bad role or form, and any bug in the handler (logged with its traceback
and counted as ``internal_error``) get ``<Hangup/>``, or, for the caller's own webhook, the
apology and ``<Hangup/>``. Status callbacks are not TwiML and keep their status codes (404 for an
unknown call, 400 for a callback without ``CallSid``). A bad signature is a 403 everywhere: such a
request did not come from Twilio. Unknown call ids on the media WebSocket refuse the upgrade.

The calls themselves are reached through ``CallDirectory`` (``calls.supervisor.CallSupervisor``),
so this Twilio package never imports the call code.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, HTTPException

from callbridge.config import Config, pick_prompt
from callbridge.log import get_logger
from callbridge.records import CallRecord
from callbridge.roles import Role
from callbridge.routing import CallerLanguage, LanguageRules, MenuRequired
from callbridge.telephony.language_menu import menu_prompts
from callbridge.telephony.signature import SignatureChecker
from callbridge.telephony.status import StatusCallbackError, StatusUpdate, parse_status_callback
from callbridge.telephony.twiml import (
    connect_stream_twiml,
    hangup_twiml,
    http_url,
    language_menu_twiml,
    language_menu_url,
    media_stream_url,
    parse_gather_digits,
    redirect_twiml,
    say_and_hangup_twiml,
    stream_ended_url,
)

__all__ = ["CallDirectory", "CallHandle", "TwilioWebhooks"]

log = get_logger("callbridge.webhooks")

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# How many times one call is handed from a draining instance back to the balancer.
MAX_HANDOFFS: Final = 3

_ROUTES: Final = (
    ("/twiml/client", "incoming_call", ("POST",)),
    ("/twiml/client/language", "language_chosen", ("POST",)),
    ("/twiml/operator/<call_id>", "operator_answered", ("POST",)),
    ("/twilio/status/<call_id>/<role>", "status_callback", ("POST",)),
    ("/twiml/stream-ended/<call_id>/<role>", "stream_ended", ("POST",)),
)
# The routes whose answer Twilio runs as TwiML: they answer TwiML on every path.
_TWIML_ENDPOINTS: Final = frozenset(
    {"incoming_call", "language_chosen", "operator_answered", "stream_ended"}
)

View = Callable[..., Awaitable[Response]]


class CallHandle(Protocol):
    """A live or recently ended call, as far as late webhooks need it."""

    @property
    def record(self) -> CallRecord: ...

    @property
    def ended(self) -> bool: ...

    def operator_answered(self, call_sid: str) -> bool: ...

    def on_status(self, role: Role, update: StatusUpdate) -> None: ...

    def stream_ended(self, role: Role) -> None: ...


class CallDirectory(Protocol):
    """Admission and lookup of calls (``calls.supervisor.CallSupervisor``)."""

    async def admit(
        self, *, caller_sid: str, caller_number: str, language: CallerLanguage
    ) -> CallHandle | None: ...

    def find_any(self, call_id: str) -> CallHandle | None: ...


def _handoffs(value: str | None) -> int:
    """The ``handoff`` count a draining instance put in the redirect URL (0: none, or junk)."""
    return int(value) if value is not None and value.isdigit() and len(value) < 3 else 0


def _twiml(body: str) -> Response:
    return Response(body, status=200, content_type="text/xml; charset=utf-8")


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status=status, content_type="application/json")


class TwilioWebhooks:
    """The view functions, closed over one config, call directory and signature checker."""

    def __init__(
        self,
        config: Config,
        calls: CallDirectory,
        checker: SignatureChecker,
        counters: Counter[str],
        handoff: Callable[[], bool] | None = None,
    ) -> None:
        self._config = config
        self._calls = calls
        self._checker = checker
        self._counters = counters
        # True while this instance drains and another one takes calls (cluster mode).
        self._handoff = handoff
        self._rules = LanguageRules.from_config(config)
        self._menu = menu_prompts(config) if config.languages.menu else ()

    def blueprint(self) -> Blueprint:
        bp = Blueprint("twilio", __name__)
        for rule, endpoint, methods in _ROUTES:
            view: Callable[..., Awaitable[ResponseReturnValue]] = getattr(self, endpoint)
            if endpoint in _TWIML_ENDPOINTS:
                view = self._always_twiml(getattr(self, endpoint), endpoint)
            bp.add_url_rule(rule, endpoint, view, methods=list(methods))
        return bp

    # ---- the routes -----------------------------------------------------------------------------

    async def incoming_call(self) -> Response:
        form = await self._verified_form(number_webhook=True)
        if form is None:
            return _error(403, "invalid signature")
        handed = _handoffs(request.args.get("handoff"))
        if self._handoff is not None and handed < MAX_HANDOFFS and self._handoff():
            # Counted in the URL, so a balancer that keeps choosing draining instances ends in
            # the busy prompt rather than a loop of redirects.
            self._counters["handed_off_calls"] += 1
            log.info("call_handed_off", caller_sid=form.get("CallSid", ""), handoffs=handed + 1)
            url = http_url(self._config.public_url, f"/twiml/client?handoff={handed + 1}")
            return _twiml(redirect_twiml(url))
        decided = self._rules.decide(form.get("From", ""))
        if isinstance(decided, MenuRequired):
            return self._language_menu(form)
        return await self._admit(form, decided)

    async def language_chosen(self) -> Response:
        """The menu's answer: ``Digits`` (a key) or none (the menu ran out); never the menu
        again, whatever was pressed."""
        form = await self._verified_form(number_webhook=True)
        if form is None:
            return _error(403, "invalid signature")
        digits = parse_gather_digits(form)
        decided = self._rules.decide(form.get("From", ""), digits)
        if isinstance(decided, MenuRequired):  # decide() asks only when given no digit at all
            decided = self._rules.fallback()
        log.info(
            "language_menu_answered",
            caller_sid=form.get("CallSid", ""),
            digits=digits,
            language=decided.language,
            source=str(decided.source),
        )
        return await self._admit(form, decided)

    async def operator_answered(self, call_id: str) -> Response:
        checked = await self._call_request(call_id, Role.OPERATOR.value, twiml=True)
        if isinstance(checked, Response):
            return checked
        form, session, _ = checked
        if not session.operator_answered(form.get("CallSid", "")):
            log.info("operator_answer_refused", call_id=call_id, ended=session.ended)
            return _twiml(hangup_twiml())
        language = session.record.operator_language  # this call's, from the operator's pick
        intro = pick_prompt(self._config.prompts.operator_intro, language)
        return _twiml(self._stream_twiml(session.record.id, Role.OPERATOR, intro, language))

    async def status_callback(self, call_id: str, role: str) -> Response:
        checked = await self._call_request(call_id, role, twiml=False)
        if isinstance(checked, Response):
            return checked
        form, session, party = checked
        try:
            update = parse_status_callback(form)
        except StatusCallbackError as exc:
            self._counters["bad_request"] += 1
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

    async def stream_ended(self, call_id: str, role: str) -> Response:
        checked = await self._call_request(call_id, role, twiml=True)
        if isinstance(checked, Response):
            return checked
        _, session, party = checked
        # We answer <Hangup/>, so that party is gone: a live call ends now (a stream whose
        # upgrade was refused has no stop or close to tell it). Ended calls just get the TwiML.
        session.stream_ended(party)
        return _twiml(hangup_twiml())

    # ---- helpers --------------------------------------------------------------------------------

    async def _admit(self, form: Mapping[str, str], language: CallerLanguage) -> Response:
        """Admit the call with the caller's ``language``: the greeting and their stream, or
        the busy prompt, said in that language."""
        caller_sid = form.get("CallSid", "")
        if not caller_sid:
            return self._without_call_sid()
        config, said = self._config, language.language
        session = await self._calls.admit(
            caller_sid=caller_sid, caller_number=form.get("From", ""), language=language
        )
        if session is None:
            self._counters["refused_calls"] += 1
            busy = pick_prompt(config.prompts.busy, said)
            return _twiml(say_and_hangup_twiml(busy, said))
        greeting = pick_prompt(config.prompts.greeting, said)
        return _twiml(self._stream_twiml(session.record.id, Role.CALLER, greeting, said))

    def _language_menu(self, form: Mapping[str, str]) -> Response:
        """Ask the caller for their language; the call is admitted once they answered."""
        if not form.get("CallSid", ""):
            return self._without_call_sid()
        log.info("language_menu", caller_sid=form["CallSid"], options=len(self._menu))
        config = self._config
        return _twiml(
            language_menu_twiml(
                self._menu,
                action_url=language_menu_url(config.public_url),
                timeout_s=config.languages.menu_timeout_s,
            )
        )

    async def _verified_form(self, *, number_webhook: bool = False) -> Mapping[str, str] | None:
        """The request's form if its signature is valid, else None (already logged and counted).
        ``number_webhook``: signed over ``server.public_url`` (the number's own webhooks), else
        over ``cluster.instance_url``."""
        form = await request.form
        signature = request.headers.get(SIGNATURE_HEADER)
        path, query = request.path, request.query_string
        if self._checker.check_http(path, query, form, signature, number_webhook=number_webhook):
            return form
        self._counters["bad_signature"] += 1
        log.warning(
            "signature_rejected",
            route=request.path,
            present=SIGNATURE_HEADER in request.headers,
            remote=request.remote_addr,
        )
        return None

    async def _call_request(
        self, call_id: str, role: str, *, twiml: bool
    ) -> tuple[Mapping[str, str], CallHandle, Role] | Response:
        """A signed webhook about a live or recently ended call: its form, the call and the
        party, or the response to send (403 bad signature; an unknown call or role: 404, or
        ``<Hangup/>`` when Twilio runs the answer as TwiML)."""
        form = await self._verified_form()
        if form is None:
            return _error(403, "invalid signature")
        session = self._calls.find_any(call_id)
        if session is None or role not in Role.__members__.values():
            unknown = self._unknown(call_id, request.path)
            return _twiml(hangup_twiml()) if twiml else unknown
        return form, session, Role(role)

    def _always_twiml(self, view: View, endpoint: str) -> View:
        """``view`` that answers TwiML even when it fails: a bug must not make Twilio play
        "an application error has occurred" (or leave an operator in silence)."""

        @functools.wraps(view)
        async def guarded(**kwargs: str) -> Response:
            try:
                return await view(**kwargs)
            except HTTPException as exc:
                if not isinstance(exc, BadRequest):
                    raise  # a deliberate HTTP answer (e.g. a body over the size limit)
                self._counters["bad_request"] += 1
                log.warning("webhook_invalid", route=request.path, error=exc.description)
            except Exception:  # the last resort of a TwiML route; trio.Cancelled passes
                self._counters["internal_error"] += 1
                log.exception("webhook_failed", route=request.path, endpoint=endpoint)
            fallback = self._apology() if endpoint == "incoming_call" else hangup_twiml()
            return _twiml(fallback)

        return guarded

    def _without_call_sid(self) -> Response:
        """Twilio runs this answer as TwiML: a form without CallSid still gets the apology."""
        self._counters["bad_request"] += 1
        log.warning("incoming_call_invalid", problem="CallSid missing")
        return _twiml(self._apology())

    def _apology(self) -> str:
        language = self._config.languages.caller
        return say_and_hangup_twiml(pick_prompt(self._config.prompts.apology, language), language)

    def _stream_twiml(self, call_id: str, role: Role, say: str, language: str) -> str:
        # The call's own instance: both streams and the <Connect action> must reach its owner.
        base = self._config.instance_url
        return connect_stream_twiml(
            say_text=say or None,
            say_lang=language,
            stream_url=media_stream_url(base, call_id, role.value),
            action_url=stream_ended_url(base, call_id, role.value),
            parameters={"call_id": call_id, "role": role.value},
        )

    def _unknown(self, call_id: str, route: str) -> Response:
        self._counters["unknown_call"] += 1
        log.warning("unknown_call", call_id=call_id, route=route)
        return _error(404, "unknown call")
