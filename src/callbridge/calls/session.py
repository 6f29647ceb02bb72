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

Resource handling: cleanup always runs, shielded and bounded: the caller hears an apology or is
hung up, the operator's call is cancelled or hung up, both media sockets are closed, the Palabra
links exit with the nursery (their goodbyes are shielded inside them), the operator number is
released, and the record is published as ended with one summary log line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import structlog
import trio

from callbridge.audio import Pcm, hold_chime
from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.dialer import OperatorDialer, StatusEvent, quietly
from callbridge.calls.languages import CallLanguages
from callbridge.calls.media import CallMedia
from callbridge.calls.ports import CallControl, LinkOpener, OperatorPool, TranscriptSink
from callbridge.config import Config, pick_prompt
from callbridge.errors import CallEnded, PalabraError, TwilioError, leaves, non_exceptions
from callbridge.log import get_logger
from callbridge.records import CallRecord, EndReason
from callbridge.roles import Direction, Role
from callbridge.telephony.legs import MediaLeg
from callbridge.telephony.status import TERMINAL_STATUSES, StatusUpdate
from callbridge.telephony.twiml import say_and_hangup_twiml

__all__ = ["CallDeps", "CallSession"]

log = get_logger("callbridge.call")

# Seconds of <Say> per character, generous, so the caller's stream deadline covers the greeting.
SAY_SECONDS_PER_CHAR: Final = 0.1
# While the caller hears the greeting, how often to ask Twilio whether they are still there.
CALLER_POLL_S: Final = 2.0
# How long cleanup may spend on REST hang-ups before giving up (it is shielded from cancellation).
CLEANUP_TIMEOUT_S: Final = 10.0


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
    def __init__(self, deps: CallDeps, record: CallRecord) -> None:
        self._deps = deps
        self.record = record
        self._nursery: trio.Nursery | None = None
        self._legs: dict[Role, MediaLeg] = {}
        self._leg_arrived = {role: trio.Event() for role in Role}
        self._cancel_reason: EndReason | None = None
        self._ended = False
        config = deps.config
        self._broadcaster = CallBroadcaster(deps.transcripts)
        self.languages = CallLanguages(config, record, self._broadcaster)
        self._dialer = OperatorDialer(
            config,
            deps.control,
            deps.operators,
            record,
            self._broadcaster,
            on_pick=self.languages.operator_picked,
        )
        self.media = CallMedia(
            config.media,
            {direction: config.media.mode(direction) for direction in Direction},
            hold=deps.hold_audio,
            open_link=deps.open_link,
            broadcaster=self._broadcaster,
            call_id=record.id,
            palabra_chunk_ms=config.palabra.chunk_ms,
            languages=self.languages,
        )

    # ---- called from web handlers (synchronous, never blocking) --------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    def attach_leg(self, role: Role) -> MediaLeg | None:
        """A media WebSocket for ``role`` arrived; None if the call cannot take it."""
        if self._ended or self._nursery is None or role in self._legs:
            return None
        if role is Role.OPERATOR and not self._dialer.answered.is_set():
            return None
        leg = MediaLeg.open(role)
        self._legs[role] = leg
        self._leg_arrived[role].set()
        self._nursery.start_soon(self.media.receiver(leg).run, name=f"receive-{role}")
        return leg

    def operator_answered(self, call_sid: str) -> bool:
        """The operator picked up (answer webhook). True: connect their stream; False: hang up."""
        if self._ended or call_sid != self.record.operator_sid:
            return False
        self._dialer.push_status(StatusEvent(call_sid, "in-progress"))
        return True

    def on_status(self, role: Role, update: StatusUpdate) -> None:
        """A status callback. Repeats and reordering are harmless: the dialer acts on the first
        terminal status per CallSid and ignores the rest."""
        if self._ended or role is not Role.OPERATOR:
            return
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

    def cancel(self, reason: EndReason) -> None:
        """End the call from outside (shutdown, a stream that ended)."""
        self._cancel_reason = self._cancel_reason or reason
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

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
                nursery.start_soon(self._broadcaster.run, name="broadcast")
                nursery.start_soon(self._run, nursery, name="lifecycle")
        except BaseException as exc:  # classified below; non-Exceptions are re-raised
            failure = exc
        finally:
            self._ended = True
            reason = self._end_reason(failure)
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT_S):
                await self._cleanup(reason)
            self._log_summary(reason, failure)
            structlog.contextvars.unbind_contextvars("call_id")
        if failure is not None and (rest := non_exceptions(failure)) is not None:
            raise rest

    async def _run(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._caller_leg_deadline, name="caller-deadline")
        self.media.start_translators(nursery)
        self.media.start_output(nursery, Role.CALLER, self._leg_getter(Role.CALLER))
        await self._dialer.dial(nursery)
        # From the answer on, a hang-up callback ends the call even before it is bridged.
        nursery.start_soon(self._dialer.watch, name="operator-status")
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

    # ---- the end --------------------------------------------------------------------------------

    def _end_reason(self, failure: BaseException | None) -> EndReason:
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

    async def _cleanup(self, reason: EndReason) -> None:
        record = self.record
        record.status = "ended"
        record.ended_at = time.time()
        record.end_reason = reason
        try:
            await self._end_caller_at_twilio(reason)
            await self._dialer.end_at_twilio(reason)
        finally:
            # Also when the REST steps ran out of time (cancelled by the cleanup timeout): the
            # sockets, the operator's number and the hub must not wait on Twilio.
            for leg in self._legs.values():
                leg.close()
            await self._dialer.release()
            self._broadcaster.close(record)

    async def _end_caller_at_twilio(self, reason: EndReason) -> None:
        control, config = self._deps.control, self._deps.config
        sid = self.record.caller_sid
        if reason is EndReason.CALLER_HANGUP:
            return
        if reason.apologises:
            language = self.record.caller_language
            text = pick_prompt(config.prompts.apology, language)
            twiml = say_and_hangup_twiml(text, language)
            await quietly(control.update_twiml(sid, twiml), "apologise_to_caller")
        else:
            await quietly(control.hangup(sid), "hangup_caller")

    def _log_summary(self, reason: EndReason, failure: BaseException | None) -> None:
        """The canonical end-of-call line: everything worth knowing about the call in one event."""
        record = self.record
        fields: dict[str, object] = {
            "reason": str(reason),
            "duration_s": round((record.ended_at or time.time()) - record.received_at, 3),
            "caller_sid": record.caller_sid,
            "operator_sid": record.operator_sid,
            "operator": self._dialer.number,
            **_languages(record),
            "translated": self.languages.translated,
            **self.media.summary(),
        }
        if self.languages.switches:
            fields["language_switches"] = self.languages.switches
        if self._broadcaster.dropped:
            fields["transcript_dropped"] = self._broadcaster.dropped
        unexpected = [e for e in leaves(failure) if not isinstance(e, CallEnded | trio.Cancelled)]
        if unexpected:
            log.error("call_ended", **fields, error=repr(unexpected[0]), exc_info=unexpected[0])
        else:
            log.info("call_ended", **fields)


def _languages(record: CallRecord) -> dict[str, str]:
    """Both parties' languages and how each was chosen (``routing.LanguageSource``)."""
    return {
        "caller_language": record.caller_language,
        "caller_language_source": record.caller_language_source,
        "operator_language": record.operator_language,
        "operator_language_source": record.operator_language_source,
    }
