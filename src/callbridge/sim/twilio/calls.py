"""One phone call inside the fake Twilio: status machine, TwiML interpreter, status callbacks.

Inbound (the scripted caller dials our number): ``ringing`` -> POST ``{app}/twiml/client`` ->
``in-progress`` while the returned TwiML runs -> ``completed``. Outbound (REST create, an operator
phone): ``initiated`` -> ``ringing`` -> answer / busy / no-answer / failed per scenario; on answer
the ``Twiml`` parameter (or a POST to ``Url``) is run.

Resource handling: :meth:`Call.run` is started in the simulator's nursery and owns every task of
the call; :meth:`Call.end` may be awaited from anywhere (REST handler, timers, the interpreter),
stops the live stream first (``stop`` then close), cancels the interpreter, then queues the final
status callback. After a hang-up the ``<Connect action>`` is not requested
(https://www.twilio.com/docs/voice/twiml/connect, ``action``).

Layering: a call sees the simulator only as a :class:`CallHost`
(:class:`callbridge.sim.twilio.sim.TwilioSim`), so imports run one way: ``sim`` -> ``calls`` ->
``gather``, ``media``; the stream and the gather see the call through their own protocols.
"""

from __future__ import annotations

import math
import secrets
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import trio

from callbridge.log import get_logger
from callbridge.sim.twilio.audio import Party
from callbridge.sim.twilio.gather import run_gather
from callbridge.sim.twilio.media import StreamSession, iso_now
from callbridge.sim.twilio.scenario import CallerSpec, Fault, OperatorSpec, Scenario
from callbridge.sim.twilio.twiml import (
    Connect,
    Document,
    Gather,
    Hangup,
    Pause,
    Play,
    Redirect,
    Say,
    Stream,
    TwimlError,
    Unsupported,
    Verb,
    parse_twiml,
)
from callbridge.sim.twilio.webhooks import CallbackDispatcher, WebhookClient, rfc2822_now

__all__ = ["LIVE_STATUSES", "TERMINAL_STATUSES", "Call", "CallHost", "new_call_sid"]

log = get_logger("callbridge.sim.twilio.calls")

TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "failed": 404, "canceled": 487}


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


class CallHost(Protocol):
    """What a call needs from the simulator (:class:`callbridge.sim.twilio.sim.TwilioSim`): its
    settings, a nursery for work that outlives a verb, the webhook client, and its streams."""

    @property
    def app_url(self) -> str: ...

    @property
    def scenario(self) -> Scenario: ...

    @property
    def nursery(self) -> trio.Nursery: ...

    @property
    def webhooks(self) -> WebhookClient: ...

    @property
    def faults(self) -> Sequence[Fault]: ...

    @property
    def streams(self) -> Sequence[StreamSession]: ...

    def new_stream(self, call: Call, spec: Stream, url: str) -> StreamSession:
        """A ``<Connect><Stream>`` session for ``call``, not yet started (the call runs it)."""

    def on_operator_ringing(self, outbound: Call) -> None:
        """An outbound call rings (a caller scripted to hang up meanwhile does so)."""


@attrs.define(eq=False)
class Call:
    sim: CallHost
    sid: str
    account_sid: str
    from_: str
    to: str
    direction: str  # inbound | outbound-api
    party: Party
    status_callback: str | None = None
    status_callback_method: str = "POST"
    events: frozenset[str] = frozenset({"completed"})
    url: str | None = None
    url_method: str = "POST"
    twiml: str | None = None
    timeout_s: float = 60.0
    caller: CallerSpec | None = None
    operator: OperatorSpec | None = None
    status: str = "queued"
    history: list[dict[str, Any]] = attrs.field(factory=list)
    errors: list[dict[str, Any]] = attrs.field(factory=list)
    verbs_run: list[dict[str, Any]] = attrs.field(factory=list)
    created_at: float = attrs.field(factory=time.time)
    answered_at: float | None = None  # wall clock
    ended_at: float | None = None
    end_reason: str | None = None
    ending: bool = False
    ended: trio.Event = attrs.field(factory=trio.Event)
    stream: StreamSession | None = None
    callbacks: CallbackDispatcher | None = None
    _cb_seq: int = 0
    gathers_run: int = 0  # <Gather> verbs run so far (indexes caller.menu_digits)
    _flow_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _exec_scope: trio.CancelScope | None = None
    _redirect: tuple[str, str, str] | None = None  # (kind twiml|url, text-or-url, method)

    @property
    def app_url(self) -> str:
        """The app this call belongs to: the caller's own (several apps behind one simulator,
        as in a load test of N daemons), else the simulator's."""
        if self.caller is not None and self.caller.app_url:
            return self.caller.app_url
        return self.sim.app_url

    # -- status and callbacks -------------------------------------------------------------
    def set_status(self, status: str) -> None:
        self.status = status
        self.history.append({"status": status, "at": time.time()})
        log.info("call_status", call_sid=self.sid, direction=self.direction, status=status)

    def standard_params(self, status: str) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.sid,
            "CallStatus": status,
            "Called": self.to,
            "Caller": self.from_,
            "Direction": self.direction,
            "From": self.from_,
            "To": self.to,
            # Real calls carry empty geo fields, and Twilio signs them
            # (https://www.twilio.com/docs/voice/twiml, "Request parameters").
            "FromCity": "",
            "FromCountry": "US",
            "FromState": "",
            "FromZip": "",
            "ToCity": "",
            "ToCountry": "US",
            "ToState": "",
            "ToZip": "",
            "CalledZip": "",
            "CallerZip": "",
        }
        if self.direction == "inbound":
            params["StirVerstat"] = ""
        return params

    def status_event(self, event: str, status: str, extra: dict[str, str] | None = None) -> None:
        if not self.status_callback or self.callbacks is None or event not in self.events:
            return
        params = self.standard_params(status)
        params.update(
            CallbackSource="call-progress-events",
            SequenceNumber=str(self._cb_seq),
            Timestamp=rfc2822_now(),
        )
        params.update(extra or {})
        self._cb_seq += 1
        self.callbacks.submit(self.status_callback, params, self.status_callback_method)

    def stream_event(self, session: StreamSession, event: str, error: str = "") -> None:
        url = session.spec.status_callback
        if not url:
            return
        params = {
            "AccountSid": self.account_sid,
            "CallSid": self.sid,
            "StreamSid": session.stream_sid,
            "StreamName": session.spec.name or session.stream_sid,
            "StreamEvent": event,
            "Timestamp": iso_now(),
        }
        if error:
            params["StreamError"] = error
        method = session.spec.status_callback_method
        self.sim.nursery.start_soon(
            lambda: self.sim.webhooks.request(
                url, params, kind="stream_status", call_sid=self.sid, method=method
            )
        )

    def error(self, code: int, detail: str) -> None:
        self.errors.append({"code": code, "detail": detail, "at": time.time()})
        log.warning("call_error", call_sid=self.sid, code=code, detail=detail)

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flow)
            if self.caller is not None and self.caller.hangup_at_s is not None:
                nursery.start_soon(self._hangup_after, self.caller.hangup_at_s, "caller_hangup")
            await self.ended.wait()
            nursery.cancel_scope.cancel()

    async def _flow(self) -> None:
        with self._flow_scope:
            if self.direction == "inbound":
                await self._inbound()
            else:
                await self._outbound()
        if not self.ending:
            await self.end("completed", reason="twiml_end")

    async def _hangup_after(self, delay: float, reason: str) -> None:
        await trio.sleep(delay)
        await self.hangup(reason)

    async def hangup(self, reason: str) -> None:
        """The party hangs up: completed if answered, else the attempt is canceled."""
        await self.end("completed" if self.answered_at is not None else "canceled", reason=reason)

    async def _inbound(self) -> None:
        self.set_status("ringing")
        url = self.app_url.rstrip("/") + "/twiml/client"
        doc = await self._fetch(url, "POST", kind="incoming_call", status="ringing")
        if doc is None:
            self._heard_say(
                "We are sorry, an application error has occurred. Goodbye.", "en-US", 3.0
            )
            await trio.sleep(3.0)
            return
        self._answer()
        await self._run_documents(doc)

    async def _outbound(self) -> None:
        op = self.operator or OperatorSpec()
        timing = self.sim.scenario.timing
        self.set_status("initiated")
        self.status_event("initiated", "initiated")
        await trio.sleep(timing.ring_delay_s)
        if op.outcome == "failed":
            await trio.sleep(timing.fail_delay_s)
            await self.end("failed", reason="failed")
            return
        self.set_status("ringing")
        self.status_event("ringing", "ringing")
        self.sim.on_operator_ringing(self)
        if op.outcome == "busy":
            await trio.sleep(timing.busy_delay_s)
            await self.end("busy", reason="busy")
            return
        if op.outcome == "no-answer" or op.answer_delay_s >= self.timeout_s:
            await trio.sleep(self.timeout_s)
            await self.end("no-answer", reason="no_answer")
            return
        await trio.sleep(op.answer_delay_s)
        self._answer()
        self.status_event("answered", "in-progress")
        if op.hangup_at_s is not None:
            self.sim.nursery.start_soon(self._operator_hangup, op.hangup_at_s)
        if self.url:
            doc = await self._fetch(
                self.url, self.url_method, kind="outbound_url", status="in-progress"
            )
        else:
            doc = (self.twiml or "<Response/>", self.sim.app_url)
        if doc is not None:
            await self._run_documents(doc)

    async def _operator_hangup(self, delay: float) -> None:
        with trio.move_on_after(delay):
            await self.ended.wait()
        await self.hangup("operator_hangup")

    def _answer(self) -> None:
        self.answered_at = time.time()
        self.set_status("in-progress")

    async def end(self, status: str, *, reason: str) -> None:
        if self.ending:
            return
        self.ending = True
        self.end_reason = reason
        if self.stream is not None:
            stream = self.stream
            stream.request_stop("aborted" if self._abort_on_hangup() else "stopped")
            with trio.move_on_after(self.sim.scenario.timing.stop_timeout_s + 1.0):
                await stream.done.wait()
        self._flow_scope.cancel()
        self.ended_at = time.time()
        self.set_status(status)
        duration = round(self.ended_at - self.answered_at) if self.answered_at else 0
        extra = {"CallDuration": str(duration), "SipResponseCode": str(SIP_CODES.get(status, 200))}
        if status == "completed":
            extra["Duration"] = str(math.ceil(duration / 60))
        self.status_event("completed", status, extra)
        if self.callbacks is not None:
            self.callbacks.close()
        log.info("call_ended", call_sid=self.sid, status=status, reason=reason)
        self.ended.set()

    def _abort_on_hangup(self) -> bool:
        return any(
            f.kind == "abrupt_close" and f.on_hangup and f.applies_to(self.party.name, self.sid)
            for f in self.sim.faults
        )

    async def redirect(self, *, twiml: str | None, url: str | None, method: str = "POST") -> None:
        """REST update with Twiml/Url: stop the current TwiML (and stream), run the new one."""
        self._redirect = (
            ("twiml", twiml, method) if twiml is not None else ("url", url or "", method)
        )
        # The document running now. Once its stream stops, the interpreter may already be
        # running the new document: cancelling whatever scope is current then would cut it.
        scope = self._exec_scope
        if self.stream is not None:
            stream = self.stream
            stream.request_stop("stopped")
            with trio.move_on_after(self.sim.scenario.timing.stop_timeout_s + 1.0):
                await stream.done.wait()
        if scope is not None:
            scope.cancel()

    # -- TwiML interpreter -----------------------------------------------------------------
    async def _run_documents(self, doc: Document | None) -> None:
        while doc is not None and not self.ending:
            try:
                verbs = parse_twiml(doc[0])
            except TwimlError as exc:
                self.error(12100, str(exc))
                return
            nxt: Document | None = None
            with trio.CancelScope() as scope:
                self._exec_scope = scope
                nxt = await self._run_verbs(verbs, doc[1])
            self._exec_scope = None
            if self.ending:
                return
            if self._redirect is not None:
                kind, value, method = self._redirect
                self._redirect = None
                if kind == "twiml":
                    nxt = (value, self.app_url)
                else:
                    nxt = await self._fetch(value, method, kind="redirect", status="in-progress")
            doc = nxt

    async def _run_verbs(self, verbs: list[Verb], base: str) -> Document | None:
        timing = self.sim.scenario.timing
        for verb in verbs:
            self.verbs_run.append({"verb": type(verb).__name__, "at": time.time()})
            match verb:
                case Say(text=text, language=language, loop=loop):
                    seconds = min(len(text) * timing.say_ms_per_char / 1000, timing.say_max_s)
                    for _ in range(max(loop, 1)):
                        self._heard_say(text, language, seconds)
                        await trio.sleep(seconds)
                case Play(url=url, loop=loop):
                    self.party.events.append(
                        {"kind": "play", "url": url, "loop": loop, "at": time.time()}
                    )
                    if loop == 0:
                        await trio.sleep_forever()
                    await trio.sleep(timing.play_nominal_s * loop)
                case Pause(length=length):
                    await trio.sleep(length)
                case Hangup():
                    return None
                case Redirect(url=url, method=method):
                    return await self._fetch(
                        urllib.parse.urljoin(base, url),
                        method,
                        kind="redirect",
                        status="in-progress",
                    )
                case Connect():
                    outcome = await self._connect(verb, base)
                    if outcome != "next":
                        return outcome if isinstance(outcome, tuple) else None
                case Gather():
                    gathered = await run_gather(self, verb, base, timing)
                    if gathered != "next":
                        return gathered
                case Unsupported(tag=tag):
                    self.error(12200, f"unsupported verb <{tag}> skipped")
        return None

    def _heard_say(self, text: str, language: str, seconds: float) -> None:
        self.heard_say(text, language, seconds)

    def heard_say(self, text: str, language: str, seconds: float, *, voice: str = "") -> None:
        event = {
            "kind": "say",
            "text": text,
            "language": language,
            "duration_s": round(seconds, 3),
            "at": time.time(),
        }
        if voice:
            event["voice"] = voice
        self.party.events.append(event)

    async def _connect(self, verb: Connect, base: str) -> Document | str | None:
        """Run one ``<Connect><Stream>``; returns "next" (go on), a document, or None (end)."""
        if verb.stream is None:
            self.error(12200, "<Connect> without <Stream> skipped")
            return "next"
        spec = verb.stream
        if spec.status_callback:
            spec = attrs.evolve(
                spec, status_callback=urllib.parse.urljoin(base, spec.status_callback)
            )
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(base, spec.url))
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        session = self.sim.new_stream(self, spec, url)
        self.stream = session
        try:
            result = await session.run()
        finally:
            self.stream = None
        if result == "rejected":
            self.error(session.error or 31920, "stream handshake failed")
            self.stream_event(session, "stream-error", str(session.error or 31920))
        else:
            self.stream_event(session, "stream-stopped")
        if result == "aborted":
            return None
        if result == "stopped" or self.ending:
            return "next"  # a redirect or hang-up is taking over
        if verb.action:
            action = urllib.parse.urljoin(base, verb.action)
            return await self._fetch(
                action, verb.method, kind="connect_action", status="in-progress"
            )
        return "next"

    async def _fetch(self, url: str, method: str, *, kind: str, status: str) -> Document | None:
        return await self.fetch(url, method, kind=kind, status=status)

    async def fetch(
        self, url: str, method: str, *, kind: str, status: str, extra: dict[str, str] | None = None
    ) -> Document | None:
        """Request TwiML from the app (the standard parameters plus ``extra``, e.g. ``Digits``)."""
        params = self.standard_params(status) | (extra or {})
        result = await self.sim.webhooks.request(
            url, params, kind=kind, call_sid=self.sid, method=method
        )
        if result.status is None or not 200 <= result.status < 300:
            self.error(int(result.error or 11200), f"{kind} {url} answered {result.status}")
            return None
        return result.body, url

    def to_json(self) -> dict[str, Any]:
        """The Twilio Call resource (REST shape)."""
        duration = ""
        if self.ended_at and self.answered_at:
            duration = str(round(self.ended_at - self.answered_at))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": _rfc2822(self.created_at),
            "date_updated": _rfc2822(time.time()),
            "start_time": _rfc2822(self.answered_at) if self.answered_at else None,
            "end_time": _rfc2822(self.ended_at) if self.ended_at else None,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "duration": duration or None,
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {
                name: uri.replace(".json", f"/{name}.json")
                for name in (
                    "notifications",
                    "recordings",
                    "payments",
                    "events",
                    "siprec",
                    "streams",
                    "transcriptions",
                    "user_defined_message_subscriptions",
                    "user_defined_messages",
                )
            },
        }

    def report(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
            "party": self.party.name,
            "status": self.status,
            "status_history": self.history,
            "created_at": self.created_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "errors": self.errors,
            "verbs": self.verbs_run,
            "streams": [s.stream_sid for s in self.sim.streams if s.call is self],
        }


def _rfc2822(stamp: float) -> str:
    import email.utils

    return email.utils.formatdate(stamp).replace("-0000", "+0000")
