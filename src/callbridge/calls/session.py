"""``CallSession``: one call, one nursery, from the incoming webhook to the summary log line.

The nursery holds, as the call goes on (``docs/architecture.md`` draws it):

- the call's lifecycle (``_run``): dial an operator, wait for both legs and translators, bridge;
- the dialer's status watcher, and the caller's stream deadline;
- per Twilio leg, a receive task (``receive.LegReceiver``), started when the leg's WebSocket
  attaches;
- per translated direction, a Palabra duplex task (``translate.Translator``);
- per listener, a mixer task (``output.ListenerOutput``): hold audio, then the mix;
- the broadcaster task (``broadcast.CallBroadcaster``), the call's only path to the transcript hub.

The call's languages (``languages.CallLanguages``) start from the caller's, decided at admission;
the dialer's pick makes the plan (translated, or bridged as is when the operator speaks the
caller's language), and the caller's ``*digit`` keys and Palabra's detection change it as the
call goes on. Prompts to the caller are in the caller's language.

Any task failing cancels the whole call. The end reason comes from the first ``CallEnded`` raised
(``caller_hangup``, ``operator_hangup``, ``no_operator``, ...), or from the failure's type
(``translation_failed`` for Palabra, ``internal_error`` otherwise), or is ``shutdown``.

Resource handling: the end at Twilio (``ending.CallEnding``: the caller hears an apology or is hung
up, the operator's call is cancelled or hung up) starts the moment the end reason is known (a
``CallEnded`` from one of the session's own tasks, or ``cancel``), beside the Palabra links'
goodbyes rather than after them, and runs in the background; the operator legs and their numbers
are settled by ``operator_legs.OperatorLegs``, even after the call. Cleanup then always runs,
shielded and bounded: it waits for that end, closes both media sockets (the links have exited
with the nursery), and publishes the record as ended with one summary log line.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import attrs
import structlog
import trio

from callbridge.audio import Pcm, hold_chime
from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.dialer import OperatorDialer, StatusEvent
from callbridge.calls.ending import CLEANUP_TIMEOUT_S, CallEnding
from callbridge.calls.languages import CallLanguages
from callbridge.calls.media import CallMedia
from callbridge.calls.ports import (
    CallControl,
    LinkOpener,
    OperatorPool,
    TranscriptSink,
    TranslatorLink,
)
from callbridge.calls.summary import languages, log_call_ended
from callbridge.config import Config, pick_prompt
from callbridge.errors import CallEnded, PalabraError, TwilioError, leaves, non_exceptions
from callbridge.log import get_logger
from callbridge.palabra.task import TaskSettings
from callbridge.records import CallRecord, EndReason
from callbridge.roles import Direction, Role
from callbridge.telephony.legs import Inbound, MediaLeg
from callbridge.telephony.status import TERMINAL_STATUSES, StatusUpdate

__all__ = ["CLEANUP_TIMEOUT_S", "CallDeps", "CallSession"]

log = get_logger("callbridge.call")

# Seconds of <Say> per character, generous, so the caller's stream deadline covers the greeting.
SAY_SECONDS_PER_CHAR: Final = 0.1
# While the caller hears the greeting, how often to ask Twilio whether they are still there.
CALLER_POLL_S: Final = 2.0
# How long a quiet leg's status check may take; past it the leg counts as unexplained (the
# receive task waits meanwhile, and the socket's queue holds 1.3 s).
LEG_STATUS_TIMEOUT_S: Final = 5.0


@attrs.frozen
class CallDeps:
    """What every call shares (built once per daemon)."""

    config: Config
    control: CallControl
    open_link: LinkOpener
    transcripts: TranscriptSink
    operators: OperatorPool
    # Looped to the caller while the operator rings; loaded once at start-up.
    hold_audio: Pcm = attrs.field(factory=hold_chime)


class CallSession:
    """One call (see the module docstring). ``background`` is where work that may outlive the
    call runs: its operator legs' creates and hang-ups (``operator_legs.OperatorLegs``)."""

    def __init__(self, deps: CallDeps, record: CallRecord, background: trio.Nursery) -> None:
        self._deps = deps
        self.record = record
        self._nursery: trio.Nursery | None = None
        self._legs: dict[Role, MediaLeg] = {}
        self._leg_arrived = {role: trio.Event() for role in Role}
        self._cancel_reason: EndReason | None = None
        self._ended = False
        self._links: list[TranslatorLink] = []  # open Palabra links, to hurry their goodbyes
        self._links_end_by = math.inf
        config = deps.config
        self._broadcaster = CallBroadcaster(deps.transcripts)
        self.languages = CallLanguages(config, record, self._broadcaster)
        self._dialer = OperatorDialer(
            config,
            deps.control,
            deps.operators,
            record,
            self._broadcaster,
            background,
            on_pick=self.languages.operator_picked,
        )
        self.operator_legs = self._dialer.legs
        self._ending = CallEnding(config, deps.control, record, self._dialer, background)
        self.media = CallMedia(
            config.media,
            {direction: config.media.mode(direction) for direction in Direction},
            hold=deps.hold_audio,
            open_link=self._open_link,
            broadcaster=self._broadcaster,
            call_id=record.id,
            palabra_chunk_ms=config.palabra.chunk_ms,
            languages=self.languages,
        )

    # ---- called from web handlers (synchronous, never blocking) --------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    def expects_leg(self, role: Role) -> bool:
        """Whether a media WebSocket for ``role`` would be taken now (checked before the upgrade
        is accepted, so a refused one gets an HTTP status)."""
        if self._ended or self._nursery is None or role in self._legs:
            return False
        return role is Role.CALLER or self._dialer.answered.is_set()

    def attach_leg(self, role: Role, inbound: Inbound) -> MediaLeg | None:
        """A media WebSocket for ``role`` was accepted (``inbound`` reads it); its leg, or None
        if the call cannot take it."""
        if not self.expects_leg(role) or self._nursery is None:
            return None
        leg = MediaLeg.open(role, inbound)
        self._legs[role] = leg
        self._leg_arrived[role].set()
        receiver = self.media.receiver(leg, leg_status=self._leg_status)
        self._nursery.start_soon(self._ends_call, receiver.run, name=f"receive-{role}")
        return leg

    def operator_answered(self, call_sid: str) -> bool:
        """The operator picked up (answer webhook). True: connect their stream; False: hang up.
        Matched by this call's id in the URL: it may come before the create's answer."""
        if self._ended:
            self.operator_legs.on_status(StatusEvent(call_sid, "in-progress"))
            return False
        return self._dialer.answer(call_sid)

    def on_status(self, role: Role, update: StatusUpdate) -> None:
        """A status callback. Repeats and reordering are harmless: the dialer acts on the first
        terminal status per CallSid and ignores the rest."""
        if role is Role.OPERATOR:
            self._dialer.push_status(StatusEvent(update.call_sid, update.call_status))

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
        self.cancel(EndReason.hangup(role))

    def cancel(self, reason: EndReason, deadline: float = math.inf) -> None:
        """End the call from outside (shutdown, a stream that ended); its end at Twilio starts
        now, and gives up at ``deadline`` (trio time) at the latest."""
        self._cancel_reason = self._cancel_reason or reason
        if not self._ended:
            self._ending.begin(self._cancel_reason, deadline)
        self._links_end_by = min(self._links_end_by, deadline)
        for link in self._links:
            link.end_by(deadline)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    @asynccontextmanager
    async def _open_link(
        self, direction: Direction, settings: TaskSettings
    ) -> AsyncIterator[TranslatorLink]:
        """The deps' link opener, remembering the open links so ``cancel`` can hurry their
        goodbyes (a shutdown cannot wait ``palabra.end_timeout_s`` for a slow Palabra)."""
        async with self._deps.open_link(direction, settings) as link:
            self._links.append(link)
            link.end_by(self._links_end_by)
            try:
                yield link
            finally:
                self._links.remove(link)

    # ---- the call -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the call to its end. Never raises, except what is not an ``Exception``
        (``trio.Cancelled`` from above, ``KeyboardInterrupt``), re-raised after cleanup."""
        structlog.contextvars.bind_contextvars(call_id=self.record.id)
        record = self.record
        log.info(
            "call_started",
            caller_sid=record.caller_sid,
            caller=record.caller_number,
            caller_language=record.caller_language,
            caller_language_source=record.caller_language_source,
        )
        self._broadcaster.call_updated(self.record)
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._cancel_reason is not None:  # cancelled before it started
                    nursery.cancel_scope.cancel()
                nursery.start_soon(self._broadcaster.run, name="broadcast")
                nursery.start_soon(self._ends_call, self._run, nursery, name="lifecycle")
        except BaseException as exc:  # classified below; non-Exceptions are re-raised
            failure = exc
        finally:
            self._ended = True
            reason = self._end_reason(failure)
            self._ending.begin(reason)
            with trio.CancelScope(shield=True), trio.move_on_at(self._ending.deadline):
                await self._ending.done.wait()
            self._close(reason)
            self._log_summary(reason, failure)
            structlog.contextvars.unbind_contextvars("call_id")
        if failure is not None and (rest := non_exceptions(failure)) is not None:
            raise rest

    async def _ends_call(self, task: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run one of the call's tasks with the call's id in its log lines (a leg's receive task
        is started from outside); its ``CallEnded`` starts the end at Twilio at once."""
        structlog.contextvars.bind_contextvars(call_id=self.record.id)  # for a leg's task too
        try:
            await task(*args)
        except CallEnded as exc:
            self._ending.begin(exc.reason, detail=exc.detail)
            raise

    async def _run(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._ends_call, self._caller_leg_deadline, name="caller-deadline")
        self.media.start_translators(nursery)
        self.media.start_output(nursery, Role.CALLER, self._leg_getter(Role.CALLER))
        await self._dialer.dial()
        # From the answer on, a hang-up callback ends the call even before it is bridged.
        nursery.start_soon(self._ends_call, self._dialer.watch, name="operator-status")
        await self._wait_bridgeable()
        self.record.status = "connected"
        self._broadcaster.call_updated(self.record)
        log.info(
            "call_bridged",
            operator=self._dialer.number,
            operator_sid=self.record.operator_sid,
            translated=self.languages.translated,
        )
        self.media.bridge()
        self.media.start_output(nursery, Role.OPERATOR, self._leg_getter(Role.OPERATOR))

    async def _wait_bridgeable(self) -> None:
        """Both legs attached, both streams started, every translator ready, in time."""
        timeout = self._deps.config.media.legs_connect_timeout_s
        with trio.move_on_after(timeout):
            await self._leg_arrived[Role.OPERATOR].wait()
            await self._leg_arrived[Role.CALLER].wait()
            await self.media.wait_translators_ready()
            await self.media.wait_streams_started()
        if not self.media.translators_ready():
            detail = f"translators not ready {timeout} s after answer"
            raise CallEnded(EndReason.TRANSLATION_FAILED, detail)
        if not (self.media.streams_started() and len(self._legs) == len(Role)):
            raise CallEnded(
                EndReason.MEDIA_TIMEOUT, f"media legs not ready {timeout} s after answer"
            )

    def _leg_getter(self, role: Role) -> Callable[[], Awaitable[MediaLeg]]:
        async def get() -> MediaLeg:
            await self._leg_arrived[role].wait()
            return self._legs[role]

        return get

    async def _caller_leg_deadline(self) -> None:
        """The caller's stream must connect after the greeting. Until it does, a hang-up shows
        nowhere (no stream to end, no callback for an inbound call), so ask Twilio now and then."""
        config = self._deps.config
        arrived = self._leg_arrived[Role.CALLER]
        greeting = pick_prompt(config.prompts.greeting, self.record.caller_language)
        allowance = config.media.legs_connect_timeout_s + len(greeting) * SAY_SECONDS_PER_CHAR
        with trio.move_on_after(allowance):
            while not arrived.is_set():
                with trio.move_on_after(CALLER_POLL_S):
                    await arrived.wait()
                if not arrived.is_set() and await self._caller_gone():
                    raise CallEnded(EndReason.CALLER_HANGUP, "hung up before the stream connected")
            return
        detail = f"no caller media within {allowance:.0f} s"
        raise CallEnded(EndReason.CALLER_STREAM_TIMEOUT, detail)

    async def _caller_gone(self) -> bool:
        try:
            info = await self._deps.control.fetch(self.record.caller_sid)
        except TwilioError as exc:
            log.warning("caller_status_unknown", error=str(exc), status=exc.status, code=exc.code)
            return False
        return info.status in TERMINAL_STATUSES

    async def _leg_status(self, role: Role) -> str | None:
        """Twilio's status of ``role``'s call (a quiet leg may still be live), or None."""
        sid = self.record.caller_sid if role is Role.CALLER else self.record.operator_sid
        if not sid:
            return None
        with trio.move_on_after(LEG_STATUS_TIMEOUT_S):
            try:
                info = await self._deps.control.fetch(sid)
            except TwilioError as exc:
                log.warning("leg_status_unknown", role=str(role), error=str(exc), code=exc.code)
                return None
            return info.status
        log.warning("leg_status_unknown", role=str(role), error="timed out")
        return None

    # ---- the end --------------------------------------------------------------------------------

    def _end_reason(self, failure: BaseException | None) -> EndReason:
        if self._ending.reason is not None:
            return self._ending.reason  # the first reason known, already acted on at Twilio
        found = list(leaves(failure))
        for exc in found:
            if isinstance(exc, CallEnded):
                return exc.reason
        if self._cancel_reason is not None:
            return self._cancel_reason
        if any(isinstance(exc, PalabraError) for exc in found):
            return EndReason.TRANSLATION_FAILED
        if any(isinstance(exc, trio.Cancelled) for exc in found):
            return EndReason.SHUTDOWN
        return EndReason.INTERNAL_ERROR if found else EndReason.COMPLETED

    def _close(self, reason: EndReason) -> None:
        """The call's own resources, whatever Twilio did: the sockets and the hub."""
        record = self.record
        record.status = "ended"
        record.ended_at = time.time()
        record.end_reason = reason
        for leg in self._legs.values():
            leg.close()
        self._broadcaster.close(record)

    def _log_summary(self, reason: EndReason, failure: BaseException | None) -> None:
        """The canonical end-of-call line: everything worth knowing about the call in one event."""
        record = self.record
        fields: dict[str, object] = {
            "reason": str(reason),
            "duration_s": round((record.ended_at or time.time()) - record.received_at, 3),
            "caller_sid": record.caller_sid,
            "operator_sid": record.operator_sid,
            "operator": self._dialer.number,
            **languages(record),
            "translated": self.languages.translated,
            **self.media.summary(),
        }
        if self.languages.switches:
            fields["language_switches"] = self.languages.switches
        if self._broadcaster.dropped:
            fields["transcript_dropped"] = self._broadcaster.dropped
        kept = {str(r): rx.quiet_kept for r, rx in self.media.receivers.items() if rx.quiet_kept}
        if kept:
            fields["quiet_legs_kept"] = kept
        log_call_ended(fields, failure)
