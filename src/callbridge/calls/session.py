"""``CallSession``: one call, one nursery, from the incoming webhook to the summary log line.

The nursery holds, as the call goes on:

- per Twilio leg, a receive task (``media.LegReceiver``) started when the leg's WebSocket attaches;
- per translation direction, a Palabra link task (the link's own reader, paced sender and pinger
  live inside it) feeding a translator-events task;
- per listener, an output task (``media.ListenerOutput``) that plays hold audio, then the mix;
- the dialer (operator attempts) and a status watcher.

Any task failing cancels the whole call. The end reason comes from the first ``CallEnded`` raised
(``caller_hangup``, ``operator_hangup``, ``no_operator``, ...), or from the failure's type
(``translation_failed`` for Palabra, ``internal_error`` otherwise), or is ``shutdown``.

Resource handling: cleanup always runs, shielded and bounded: the caller hears an apology or is
hung up, the operator's call is cancelled or hung up, both media sockets are closed, the Palabra
links exit with the nursery (their goodbyes are shielded inside them), the operator number is
released, and the record is published as ended with one summary log line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import attrs
import structlog
import trio

from callbridge.audio import Pcm, hold_chime
from callbridge.calls.legs import MediaLeg
from callbridge.calls.media import CallMedia
from callbridge.calls.ports import CallControl, LinkOpener, OperatorSource, TranscriptSink
from callbridge.config import Config, pick_prompt
from callbridge.errors import CallEnded, PalabraError, TwilioError
from callbridge.log import get_logger
from callbridge.records import CallRecord
from callbridge.roles import Direction, Role
from callbridge.telephony.status import TERMINAL_STATUSES, StatusUpdate
from callbridge.telephony.twiml import (
    operator_twiml_url,
    say_and_hangup_twiml,
    status_callback_url,
)

__all__ = ["CallDeps", "CallSession", "StatusEvent"]

log = get_logger("callbridge.call")

# Seconds of <Say> per character, generous, so the caller's stream deadline covers the greeting.
SAY_SECONDS_PER_CHAR = 0.1
# While the caller hears the greeting, how often to ask Twilio whether they are still there.
CALLER_POLL_S = 2.0
# How long cleanup may spend on REST hang-ups before giving up (it is shielded from cancellation).
CLEANUP_TIMEOUT_S = 10.0
# Status events queued from webhooks; Twilio sends a handful per leg.
STATUS_QUEUE = 64
# A create that failed in a way that may have placed the call anyway (500/502/504, or no answer
# to a request that was sent): how long a status callback for it may take to show up before we
# dial again, and how many times we try the same number.
UNCERTAIN_CREATE_WAIT_S = 3.0
CREATE_TRIES = 2
UNCERTAIN_CREATE_STATUSES = frozenset({None, 500, 502, 504})
# Reasons after which the caller is still on the line and deserves an explanation.
APOLOGY_REASONS = frozenset(
    {"no_operator", "translation_failed", "internal_error", "media_timeout", "leg_timeout"}
)


@attrs.frozen
class CallDeps:
    """What every call shares (built once per daemon)."""

    config: Config
    control: CallControl
    open_link: LinkOpener
    transcripts: TranscriptSink
    operators: OperatorSource
    # Looped to the caller while the operator rings; loaded once at start-up.
    hold_audio: Pcm = attrs.field(factory=hold_chime)


@attrs.frozen
class StatusEvent:
    """A status change of the operator leg, from a status callback or the answer webhook."""

    call_sid: str
    status: str  # Twilio CallStatus ("ringing", "in-progress", "no-answer", ...)


class CallSession:
    def __init__(self, deps: CallDeps, record: CallRecord) -> None:
        self._deps = deps
        self.record = record
        self._status_send, self._status_recv = trio.open_memory_channel[StatusEvent](STATUS_QUEUE)
        self._nursery: trio.Nursery | None = None
        self._legs: dict[Role, MediaLeg] = {}
        self._leg_arrived = {Role.CALLER: trio.Event(), Role.OPERATOR: trio.Event()}
        self._answered = trio.Event()
        self._operator_number: str | None = None
        self._operator_final: dict[str, str] = {}  # CallSid -> terminal status seen
        self._dialed: set[str] = set()  # every operator CallSid this call placed or adopted
        self._cancel_reason: str | None = None
        self._ended = False
        self.media = CallMedia(deps.config, deps.hold_audio, self._publish, record.id)

    # ---- called from web handlers (synchronous, never blocking) --------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    def attach_leg(self, role: Role) -> MediaLeg | None:
        """A media WebSocket for ``role`` arrived; None if the call cannot take it."""
        if self._ended or self._nursery is None or role in self._legs:
            return None
        if role is Role.OPERATOR and not self._answered.is_set():
            return None
        leg = MediaLeg.open(role)
        self._legs[role] = leg
        self._leg_arrived[role].set()
        self._nursery.start_soon(self.media.run_leg, leg, name=f"leg-{role}")
        return leg

    def operator_answered(self, call_sid: str) -> bool:
        """The operator picked up (answer webhook). True: connect their stream; False: hang up."""
        if self._ended or call_sid != self.record.operator_sid:
            return False
        self._push_status(StatusEvent(call_sid, "in-progress"))
        return True

    def on_status(self, role: Role, update: StatusUpdate) -> None:
        """A status callback. Repeats and reordering are harmless: the dialer and the watcher
        act on the first terminal status per CallSid and ignore the rest."""
        if self._ended or role is not Role.OPERATOR:
            return
        self._push_status(StatusEvent(update.call_sid, update.call_status))

    def stream_ended(self, role: Role) -> None:
        """Twilio left ``role``'s ``<Connect>`` (its action URL was requested; we answer
        ``<Hangup/>``), so that party is gone. Usually the socket closing ended the call first;
        this catches a stream that never connected (upgrade refused), which would otherwise keep
        the call, and a ringing or answered operator, waiting for a media timeout."""
        if self._ended:
            return
        log.info(
            "media_stream_ended",
            call_id=self.record.id,
            role=str(role),
            attached=role in self._legs,
        )
        self.cancel(f"{role}_hangup")

    def cancel(self, reason: str) -> None:
        """End the call from outside (shutdown)."""
        self._cancel_reason = self._cancel_reason or reason
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _push_status(self, event: StatusEvent) -> None:
        try:
            self._status_send.send_nowait(event)
        except trio.WouldBlock:
            log.warning("status_event_dropped", call_id=self.record.id, status=event.status)

    # ---- the call -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the call to its end. Never raises except ``trio.Cancelled`` from above."""
        structlog.contextvars.bind_contextvars(call_id=self.record.id)
        log.info(
            "call_started", caller_sid=self.record.caller_sid, caller=self.record.caller_number
        )
        self._deps.transcripts.call_updated(self.record)
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._run, nursery)
        except BaseException as exc:  # classified below; Cancelled is re-raised
            failure = exc
        finally:
            self._ended = True
            reason = self._end_reason(failure)
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT_S):
                await self._cleanup(reason)
            self._log_summary(reason, failure)
            structlog.contextvars.unbind_contextvars("call_id")
        if failure is not None and _contains_cancelled(failure):
            raise failure

    async def _run(self, nursery: trio.Nursery) -> None:
        config = self._deps.config
        nursery.start_soon(self._caller_leg_deadline)
        links_ready = trio.Event()
        nursery.start_soon(self._open_links, links_ready)
        nursery.start_soon(self.media.run_output, Role.CALLER, self._legs_getter(Role.CALLER))
        await self._dial_operator()
        # From the answer on, a hang-up callback ends the call even before it is bridged.
        nursery.start_soon(self._watch_operator_status)
        timeout = config.media.legs_connect_timeout_s
        with trio.move_on_after(timeout):
            await self._leg_arrived[Role.OPERATOR].wait()
            await self._leg_arrived[Role.CALLER].wait()
            await links_ready.wait()
            await self.media.wait_streams_started()
        if not links_ready.is_set():
            raise CallEnded("translation_failed", f"translators not ready {timeout} s after answer")
        if not self._bridgeable():
            raise CallEnded("media_timeout", f"media legs not ready {timeout} s after answer")
        self.record.status = "connected"
        self._deps.transcripts.call_updated(self.record)
        log.info(
            "call_bridged", operator=self._operator_number, operator_sid=self.record.operator_sid
        )
        self.media.bridge()
        nursery.start_soon(self.media.run_output, Role.OPERATOR, self._legs_getter(Role.OPERATOR))

    def _bridgeable(self) -> bool:
        return self.media.streams_started() and len(self._legs) == len(Role)

    def _legs_getter(self, role: Role) -> Any:
        async def get() -> MediaLeg:
            await self._leg_arrived[role].wait()
            return self._legs[role]

        return get

    async def _caller_leg_deadline(self) -> None:
        """The caller's stream must connect after the greeting. Until it does, a hang-up shows
        nowhere (no stream to end, no callback for an inbound call), so ask Twilio now and then."""
        config = self._deps.config
        greeting = pick_prompt(config.prompts.greeting, config.languages.caller)
        allowance = config.media.legs_connect_timeout_s + len(greeting) * SAY_SECONDS_PER_CHAR
        with trio.move_on_after(allowance):
            while not self._leg_arrived[Role.CALLER].is_set():
                with trio.move_on_after(CALLER_POLL_S):
                    await self._leg_arrived[Role.CALLER].wait()
                if not self._leg_arrived[Role.CALLER].is_set() and await self._caller_gone():
                    raise CallEnded("caller_hangup", "hung up before the stream connected")
            return
        raise CallEnded("caller_stream_timeout", f"no caller media within {allowance:.0f} s")

    async def _caller_gone(self) -> bool:
        try:
            info = await self._deps.control.fetch(self.record.caller_sid)
        except TwilioError as exc:
            log.warning("caller_status_unknown", error=str(exc), status=exc.status, code=exc.code)
            return False
        return info.status in TERMINAL_STATUSES

    async def _open_links(self, ready: trio.Event) -> None:
        """Open both directions' Palabra links now, while the operator's phone rings."""
        directions = [d for d in Direction if self.media.mode(d) != "passthrough"]
        async with trio.open_nursery() as nursery:
            opened = [trio.Event() for _ in directions]
            for direction, done in zip(directions, opened, strict=True):
                nursery.start_soon(self._run_link, direction, done)
            for done in opened:
                await done.wait()
            ready.set()

    async def _run_link(self, direction: Direction, opened: trio.Event) -> None:
        async with self._deps.open_link(direction) as link:
            log.info("translator_ready", direction=str(direction))
            self.media.attach_link(direction, link)
            opened.set()
            await self.media.run_translator_events(direction, link)

    # ---- operator dial-out --------------------------------------------------------------------

    async def _dial_operator(self) -> None:
        config = self._deps.config
        tried: set[str] = set()
        for attempt in range(1, config.operators.max_attempts + 1):
            number = self._deps.operators.acquire(tried)
            if number is None:
                break
            tried.add(number)
            # Held from here on: cleanup releases it if the call ends while this phone rings.
            self._operator_number = number
            if await self._ring(number, attempt) == "answered":
                return
            self._operator_number = None
            self._deps.operators.release(number)
        raise CallEnded("no_operator", f"tried {len(tried)} operator(s)")

    async def _ring(self, number: str, attempt: int) -> str:
        config = self._deps.config
        sid = await self._place_operator_call(number)
        if sid is None:
            return "failed"
        self.record.operator_sid = sid
        self.record.operator_number = number
        self._deps.transcripts.call_updated(self.record)
        log.info("operator_dialed", operator=number, operator_sid=sid, attempt=attempt)
        # Twilio gives up ringing after Timeout (+ up to 5 s); past that with no word, we give up too.
        with trio.move_on_after(config.operators.ring_timeout_s + 15):
            async for event in self._status_recv:
                if event.call_sid != sid:
                    self._check_orphan(event)
                    continue
                if event.status in ("in-progress", "answered"):
                    self._answered.set()
                    self.record.answered_at = time.time()
                    log.info("operator_answered", operator_sid=sid)
                    return "answered"
                if event.status in TERMINAL_STATUSES:
                    self._operator_final[sid] = event.status
                    log.info("operator_not_reached", operator_sid=sid, status=event.status)
                    return event.status
        log.warning("operator_ring_timeout", operator_sid=sid)
        await self._quietly(self._deps.control.cancel(sid), "cancel_operator")
        self._operator_final[sid] = "no-answer"
        return "no-answer"

    async def _place_operator_call(self, number: str) -> str | None:
        """Create the operator's call; its CallSid, or None if this number cannot be dialled.

        Creating a call is not idempotent, so the REST client does not retry a failure that may
        have placed the call anyway. If that call exists, Twilio announces it within moments
        with a status callback to this call's URL; only if none comes do we dial again."""
        config = self._deps.config
        base = config.public_url
        call_id = self.record.id
        for _ in range(CREATE_TRIES):
            try:
                info = await self._deps.control.create_call(
                    to=number,
                    from_=config.twilio.number,
                    url=operator_twiml_url(base, call_id),
                    status_callback=status_callback_url(base, call_id, str(Role.OPERATOR)),
                    timeout_s=config.operators.ring_timeout_s,
                )
            except TwilioError as exc:
                if exc.status not in UNCERTAIN_CREATE_STATUSES:
                    log.warning("operator_not_dialled", operator=number, error=str(exc))
                    return None
                sid = await self._callback_of_an_unknown_call()
                if sid is not None:
                    log.info("operator_call_found", operator=number, operator_sid=sid)
                    self._dialed.add(sid)
                    return sid
                log.warning("operator_create_uncertain", operator=number, error=str(exc))
                continue
            sid = str(info.sid)
            self._dialed.add(sid)
            return sid
        return None

    async def _callback_of_an_unknown_call(self) -> str | None:
        """Wait a little for a status callback from an operator call we did not know about."""
        with trio.move_on_after(UNCERTAIN_CREATE_WAIT_S):
            async for event in self._status_recv:
                if event.call_sid not in self._dialed:
                    if event.status in TERMINAL_STATUSES:
                        self._operator_final[event.call_sid] = event.status
                        self._dialed.add(event.call_sid)
                        return None  # placed and already over: dial again
                    return event.call_sid
        return None

    def _check_orphan(self, event: StatusEvent) -> None:
        """A call we never learnt the CallSid of (a create that seemed to fail and was repeated)
        is ringing an operator: cancel it."""
        sid = event.call_sid
        if sid in self._dialed or self._nursery is None:
            return
        self._dialed.add(sid)
        if event.status in TERMINAL_STATUSES:
            return
        log.warning("operator_call_orphaned", operator_sid=sid, status=event.status)
        self._nursery.start_soon(self._quietly, self._deps.control.cancel(sid), "cancel_orphan")

    async def _watch_operator_status(self) -> None:
        sid = self.record.operator_sid
        async for event in self._status_recv:
            if event.call_sid != sid:
                self._check_orphan(event)
            elif event.status in TERMINAL_STATUSES:
                self._operator_final[sid] = event.status
                raise CallEnded("operator_hangup", f"status {event.status}")

    # ---- the end --------------------------------------------------------------------------------

    def _end_reason(self, failure: BaseException | None) -> str:
        leaves = list(_leaves(failure)) if failure is not None else []
        for exc in leaves:
            if isinstance(exc, CallEnded):
                return exc.reason
        if self._cancel_reason is not None:
            return self._cancel_reason
        if any(isinstance(exc, PalabraError) for exc in leaves):
            return "translation_failed"
        if any(isinstance(exc, trio.Cancelled) for exc in leaves):
            return "shutdown"
        return "internal_error" if leaves else "completed"

    async def _cleanup(self, reason: str) -> None:
        record = self.record
        record.status = "ended"
        record.ended_at = time.time()
        record.end_reason = reason
        try:
            await self._end_legs_at_twilio(reason)
        finally:
            # Also when the REST steps ran out of time (cancelled by the cleanup timeout): the
            # sockets, the operator's number and the hub must not wait on Twilio.
            for leg in self._legs.values():
                leg.close()
            self._status_recv.close()
            if self._operator_number is not None:
                self._deps.operators.release(self._operator_number)
            self._deps.transcripts.call_updated(record)

    async def _end_legs_at_twilio(self, reason: str) -> None:
        record = self.record
        control = self._deps.control
        config = self._deps.config
        if reason != "caller_hangup":
            if reason in APOLOGY_REASONS:
                text = pick_prompt(config.prompts.apology, config.languages.caller)
                twiml = say_and_hangup_twiml(text, config.languages.caller)
                await self._quietly(
                    control.update_twiml(record.caller_sid, twiml), "apologise_to_caller"
                )
            else:
                await self._quietly(control.hangup(record.caller_sid), "hangup_caller")
        sid = record.operator_sid
        if sid is not None and sid not in self._operator_final and reason != "operator_hangup":
            action = control.hangup(sid) if self._answered.is_set() else control.cancel(sid)
            await self._quietly(action, "end_operator_leg")
        # Calls an uncertain create placed that we learnt of too late, still ringing.
        for orphan in self._dialed - {sid} - self._operator_final.keys():
            await self._quietly(control.cancel(orphan), "cancel_orphan")

    async def _quietly(self, action: Any, what: str) -> None:
        """REST during cleanup: failures are logged, never stop the rest of the cleanup."""
        try:
            await action
        except TwilioError as exc:
            log.warning(
                "cleanup_step_failed", step=what, error=str(exc), status=exc.status, code=exc.code
            )

    def _log_summary(self, reason: str, failure: BaseException | None) -> None:
        """The canonical end-of-call line: everything worth knowing about the call in one event."""
        record = self.record
        fields: dict[str, Any] = {
            "reason": reason,
            "duration_s": round((record.ended_at or time.time()) - record.received_at, 3),
            "caller_sid": record.caller_sid,
            "operator_sid": record.operator_sid,
            "operator": self._operator_number,
            **self.media.summary(),
        }
        unexpected = (
            [e for e in _leaves(failure) if not isinstance(e, CallEnded | trio.Cancelled)]
            if failure
            else []
        )
        if unexpected:
            log.error("call_ended", **fields, error=repr(unexpected[0]), exc_info=unexpected[0])
        else:
            log.info("call_ended", **fields)

    def _publish(self, event: Any) -> None:
        self._deps.transcripts.publish(event)


def _leaves(exc: BaseException | None) -> Iterable[BaseException]:
    if exc is None:
        return
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _contains_cancelled(exc: BaseException) -> bool:
    return any(isinstance(e, trio.Cancelled) for e in _leaves(exc))
