"""``OperatorDialer``: rings operators for one call until one answers, through Twilio REST.

Each attempt takes an idle operator from the pool (one who speaks the caller's language first:
``routing.OperatorPool``), tells ``on_pick`` (the call's languages follow the pick's
``BridgePlan``), creates the operator's call with a status callback
to this call's URL, and follows it through status callbacks (and the answer webhook) until it is
answered or reaches a terminal status; no word within the ring timeout cancels it. The next idle
number is tried, up to ``operators.max_attempts``; then the call ends ``no_operator``.

Twilio holds the truth about calls: a create cannot be undone, and one that failed in a way that
may have placed the call anyway (500/502/504, no answer) is settled by its status callback rather
than dialled twice. Every operator CallSid the call placed or learnt of is remembered, so
``end_at_twilio`` can cancel or hang up whichever is still alive when the call ends.

Status events come from webhooks through ``push_status`` (a bounded channel; Twilio sends a handful
per leg, and repeats and reordering are harmless: the first terminal status per CallSid wins).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio

from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.ports import CallControl, OperatorPool
from callbridge.config import Config
from callbridge.errors import CallEnded, TwilioError
from callbridge.log import get_logger
from callbridge.records import CallRecord, EndReason
from callbridge.roles import Role
from callbridge.routing import OperatorPick
from callbridge.telephony.status import TERMINAL_STATUSES
from callbridge.telephony.twiml import operator_twiml_url, status_callback_url

__all__ = ["OperatorDialer", "RingOutcome", "StatusEvent", "quietly"]

log = get_logger("callbridge.dialer")

# Status events queued from webhooks; Twilio sends a handful per leg.
STATUS_QUEUE: Final = 64
# A create that failed in a way that may have placed the call anyway (500/502/504, or no answer
# to a request that was sent): how long a status callback for it may take to show up before we
# dial again, and how many times we try the same number.
UNCERTAIN_CREATE_WAIT_S: Final = 3.0
CREATE_TRIES: Final = 2
UNCERTAIN_CREATE_STATUSES: Final = frozenset({None, 500, 502, 504})
# Twilio gives up ringing after Timeout (+ up to 5 s); past that with no word, we give up too.
RING_SLACK_S: Final = 15.0
ANSWERED_STATUSES: Final = frozenset({"in-progress", "answered"})
# Returning a number to the pool at the call's end may not wait longer (a shared pool is remote).
RELEASE_TIMEOUT_S: Final = 2.0


class RingOutcome(enum.StrEnum):
    """How one attempt ended: answered, or Twilio's terminal CallStatus, or never placed."""

    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    NOT_DIALLED = "not-dialled"


@attrs.frozen
class StatusEvent:
    """A status change of the operator leg, from a status callback or the answer webhook."""

    call_sid: str
    status: str  # Twilio CallStatus ("ringing", "in-progress", "no-answer", ...)


async def quietly(action: Awaitable[None], what: str) -> None:
    """A REST step during cleanup: a failure is logged, never stops the rest of the cleanup."""
    try:
        await action
    except TwilioError as exc:
        log.warning(
            "cleanup_step_failed", step=what, error=str(exc), status=exc.status, code=exc.code
        )


class OperatorDialer:
    """Finds one call an operator; see the module docstring."""

    def __init__(
        self,
        config: Config,
        control: CallControl,
        operators: OperatorPool,
        record: CallRecord,
        broadcaster: CallBroadcaster,
        on_pick: Callable[[OperatorPick], None] | None = None,
    ) -> None:
        self._config = config
        self._control = control
        self._operators = operators
        self._record = record
        self._broadcaster = broadcaster
        self._on_pick = on_pick
        self._status_send, self._status_recv = trio.open_memory_channel[StatusEvent](STATUS_QUEUE)
        self._nursery: trio.Nursery | None = None
        self.answered = trio.Event()
        self.number: str | None = None  # held from the pool while it rings or talks
        self._final: dict[str, str] = {}  # CallSid -> terminal status seen
        self._dialed: set[str] = set()  # every operator CallSid this call placed or adopted

    def push_status(self, event: StatusEvent) -> None:
        """From a webhook; never blocks (dropped with a warning past ``STATUS_QUEUE``)."""
        try:
            self._status_send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.warning("status_event_dropped", call_id=self._record.id, status=event.status)

    # ---- dialling ------------------------------------------------------------------------------

    async def dial(self, nursery: trio.Nursery) -> None:
        """Ring operators until one answers. Raises ``CallEnded(no_operator)``."""
        self._nursery = nursery
        tried: set[str] = set()
        for attempt in range(1, self._config.operators.max_attempts + 1):
            # "auto" (detection pending) means no preference.
            pick = await self._operators.acquire(tried, self._record.caller_language)
            if pick is None:
                break
            number = pick.number
            tried.add(number)
            # Held from here on: ``release`` frees it if the call ends while this phone rings.
            self.number = number
            if self._on_pick is not None:
                self._on_pick(pick)
            if await self._ring(number, attempt) is RingOutcome.ANSWERED:
                return
            self.number = None
            await self._operators.release(number)
        raise CallEnded(EndReason.NO_OPERATOR, f"tried {len(tried)} operator(s)")

    async def _ring(self, number: str, attempt: int) -> RingOutcome:
        sid = await self._place_call(number)
        if sid is None:
            return RingOutcome.NOT_DIALLED
        record = self._record
        record.operator_sid, record.operator_number = sid, number
        self._broadcaster.call_updated(record)
        log.info("operator_dialed", operator=number, operator_sid=sid, attempt=attempt)
        with trio.move_on_after(self._config.operators.ring_timeout_s + RING_SLACK_S):
            async for event in self._status_recv:
                if event.call_sid != sid:
                    self._check_orphan(event)
                elif event.status in ANSWERED_STATUSES:
                    self.answered.set()
                    record.answered_at = time.time()
                    log.info("operator_answered", operator_sid=sid)
                    return RingOutcome.ANSWERED
                elif event.status in TERMINAL_STATUSES:
                    self._final[sid] = event.status
                    log.info("operator_not_reached", operator_sid=sid, status=event.status)
                    return RingOutcome(event.status)
        log.warning("operator_ring_timeout", operator_sid=sid)
        await quietly(self._control.cancel(sid), "cancel_operator")
        self._final[sid] = RingOutcome.NO_ANSWER
        return RingOutcome.NO_ANSWER

    async def _place_call(self, number: str) -> str | None:
        """Create the operator's call; its CallSid, or None if this number cannot be dialled.

        Creating a call is not idempotent, so the REST client does not retry a failure that may
        have placed the call anyway. If that call exists, Twilio announces it within moments
        with a status callback to this call's URL; only if none comes do we dial again."""
        config = self._config
        base, call_id = config.public_url, self._record.id
        for _ in range(CREATE_TRIES):
            try:
                info = await self._control.create_call(
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
            self._dialed.add(info.sid)
            return info.sid
        return None

    async def _callback_of_an_unknown_call(self) -> str | None:
        """Wait a little for a status callback from an operator call we did not know about."""
        with trio.move_on_after(UNCERTAIN_CREATE_WAIT_S):
            async for event in self._status_recv:
                if event.call_sid not in self._dialed:
                    if event.status in TERMINAL_STATUSES:
                        self._final[event.call_sid] = event.status
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
        self._nursery.start_soon(quietly, self._control.cancel(sid), "cancel_orphan")

    async def watch(self) -> None:
        """After the answer: the operator's terminal status ends the call (``operator_hangup``)."""
        sid = self._record.operator_sid
        async for event in self._status_recv:
            if event.call_sid != sid:
                self._check_orphan(event)
            elif event.status in TERMINAL_STATUSES:
                self._final[event.call_sid] = event.status
                raise CallEnded(EndReason.OPERATOR_HANGUP, f"status {event.status}")

    # ---- the end --------------------------------------------------------------------------------

    async def end_at_twilio(self, reason: EndReason) -> None:
        """End every operator call of this call that Twilio may still have: the one we talk to
        (hung up if answered, cancelled if ringing) and any a repeated create left ringing."""
        sid = self._record.operator_sid
        if sid is not None and sid not in self._final and reason is not EndReason.OPERATOR_HANGUP:
            control = self._control
            action = control.hangup(sid) if self.answered.is_set() else control.cancel(sid)
            await quietly(action, "end_operator_leg")
        for orphan in self._dialed - {sid} - self._final.keys():
            await quietly(self._control.cancel(orphan), "cancel_orphan")

    async def release(self) -> None:
        """The call is over: no more status events; the operator's number goes back to the pool
        (shielded and bounded: this runs in the call's cleanup, which may be cancelled)."""
        self._status_recv.close()
        if self.number is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT_S):
                await self._operators.release(self.number)
