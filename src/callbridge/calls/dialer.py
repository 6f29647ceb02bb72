"""``OperatorDialer``: rings operators for one call until one answers, through Twilio REST.

Each attempt takes an idle operator from the pool (one who speaks the caller's language first:
``routing.OperatorPool``), tells ``on_pick`` (the call's languages follow the pick's
``BridgePlan``), creates the operator's call with a status callback
to this call's URL, and follows it through status callbacks (and the answer webhook) until it is
answered or reaches a terminal status; no word within the ring timeout cancels it. The next idle
number is tried, up to ``operators.max_attempts``; then the call ends ``no_operator``.

Twilio holds the truth about calls: a create cannot be undone, so ``operator_legs.OperatorLegs``
owns every create and every operator CallSid the call placed or learnt of, beyond the call's own
end (a late SID is cancelled, the number held until that leg is over). Twilio's webhooks about
the attempt may come before the create's answer (or instead of it): the ledger adopts the first
unknown CallSid as the attempt's leg while its create is outstanding. A create that failed in a
way that may have placed the call anyway (500/502/504, no answer) is settled by a status callback
rather than dialled twice; only if none comes within ``UNCERTAIN_CREATE_WAIT_S`` is it repeated.

Status events and create results reach the dialer through one bounded channel (Twilio sends a
handful per leg, and repeats and reordering are harmless: the first terminal status per CallSid
wins).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.operator_legs import (
    ANSWERED_STATUSES,
    UNCERTAIN_CREATE_WAIT_S,
    CreateResult,
    OperatorLegs,
    StatusEvent,
)
from callbridge.calls.ports import CallControl, OperatorPool
from callbridge.config import Config
from callbridge.errors import CallEnded, TwilioError
from callbridge.log import get_logger
from callbridge.records import CallRecord, EndReason
from callbridge.roles import Role
from callbridge.routing import OperatorPick
from callbridge.telephony.status import TERMINAL_STATUSES
from callbridge.telephony.twiml import operator_twiml_url, status_callback_url

__all__ = [
    "UNCERTAIN_CREATE_WAIT_S",
    "OperatorDialer",
    "RingOutcome",
    "StatusEvent",
    "quietly",
]

log = get_logger("callbridge.dialer")

# Status events and create results queued for the dialer; Twilio sends a handful per leg.
STATUS_QUEUE: Final = 64
# How many times one number is dialled when creates fail uncertainly and no callback shows up.
CREATE_TRIES: Final = 2
# Twilio gives up ringing after Timeout (+ up to 5 s); past that with no word, we give up too.
RING_SLACK_S: Final = 15.0


class RingOutcome(enum.StrEnum):
    """How one attempt ended: answered, or Twilio's terminal CallStatus, or never placed."""

    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    NOT_DIALLED = "not-dialled"


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
        background: trio.Nursery,
        on_pick: Callable[[OperatorPick], None] | None = None,
    ) -> None:
        self._config = config
        self._record = record
        self._broadcaster = broadcaster
        self._events_send, self._events = trio.open_memory_channel[StatusEvent | CreateResult](
            STATUS_QUEUE
        )
        self.legs = OperatorLegs(
            control,
            operators,
            background,
            hold_limit_s=config.operators.ring_timeout_s + RING_SLACK_S,
            forward=self._forward,
        )
        self._on_pick = on_pick
        self.answered = trio.Event()
        self.number: str | None = None  # the number this call rings or talks to

    def push_status(self, event: StatusEvent) -> None:
        """From a webhook; never blocks. The ledger sees it at once, the dialer through its
        queue (dropped with a warning past ``STATUS_QUEUE``)."""
        self.legs.on_status(event)

    def answer(self, call_sid: str) -> bool:
        """The answer webhook: True to connect this operator, False to hang up on them."""
        return self.legs.answered(call_sid)

    def _forward(self, item: StatusEvent | CreateResult) -> None:
        try:
            self._events_send.send_nowait(item)
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.warning("status_event_dropped", call_id=self._record.id, event=repr(item))

    # ---- dialling ------------------------------------------------------------------------------

    async def dial(self) -> None:
        """Ring operators until one answers. Raises ``CallEnded(no_operator)``."""
        tried: set[str] = set()
        for attempt in range(1, self._config.operators.max_attempts + 1):
            # "auto" (detection pending) means no preference.
            pick = await self.legs.acquire(tried, self._record.caller_language)
            if pick is None:
                break
            number = pick.number
            tried.add(number)
            self.number = number
            if self._on_pick is not None:
                self._on_pick(pick)
            if await self._ring(number, attempt) is RingOutcome.ANSWERED:
                return
            self.number = None
            self.legs.attempt_over()
        raise CallEnded(EndReason.NO_OPERATOR, f"tried {len(tried)} operator(s)")

    async def _ring(self, number: str, attempt: int) -> RingOutcome:
        deadline = trio.current_time() + self._config.operators.ring_timeout_s + RING_SLACK_S
        with trio.move_on_at(deadline):
            for _ in range(CREATE_TRIES):
                token = self.legs.start_create(number, self._create_args(number))
                outcome = await self._follow(token, number, attempt)
                if outcome is not None:
                    return outcome
            return RingOutcome.NOT_DIALLED
        log.warning("operator_ring_timeout", operator=number, operator_sid=self.legs.wanted)
        self.legs.abandon_attempt()
        return RingOutcome.NO_ANSWER

    async def _follow(self, token: int, number: str, attempt: int) -> RingOutcome | None:
        """Follow one create and its call to an outcome; None: dial again (an uncertain create
        whose call never showed up)."""
        uncertain_until = math.inf
        while True:
            with trio.move_on_at(uncertain_until):
                item = await self._events.receive()
                if isinstance(item, CreateResult):
                    if item.token == token and item.sid is None:
                        if not item.uncertain:
                            log.warning("operator_not_dialled", operator=number, error=item.error)
                            return RingOutcome.NOT_DIALLED
                        if self.legs.wanted is None:
                            uncertain_until = trio.current_time() + UNCERTAIN_CREATE_WAIT_S
                    self._note_wanted(number, attempt)
                    continue
                self._note_wanted(number, attempt)
                if self.legs.wanted is not None:
                    uncertain_until = math.inf  # the uncertain create's call showed up
                outcome = self._on_status(item)
                if outcome is not None:
                    return outcome
                continue
            log.warning("operator_create_uncertain", operator=number)
            self.legs.give_up_create(token)
            return None

    def _note_wanted(self, number: str, attempt: int) -> None:
        """Publish the attempt's CallSid once it is known (the create's answer or a webhook)."""
        sid, record = self.legs.wanted, self._record
        if sid is None or sid == record.operator_sid:
            return
        record.operator_sid, record.operator_number = sid, number
        self._broadcaster.call_updated(record)
        log.info("operator_dialed", operator=number, operator_sid=sid, attempt=attempt)

    def _on_status(self, event: StatusEvent) -> RingOutcome | None:
        if event.call_sid != self.legs.wanted:
            return None  # not this attempt's: the ledger settles it
        if event.status in ANSWERED_STATUSES:
            self.answered.set()
            self._record.answered_at = time.time()
            log.info("operator_answered", operator_sid=event.call_sid)
            return RingOutcome.ANSWERED
        if event.status in TERMINAL_STATUSES:
            log.info("operator_not_reached", operator_sid=event.call_sid, status=event.status)
            return RingOutcome(event.status)
        return None

    def _create_args(self, number: str) -> dict[str, object]:
        # This instance's own URL: the operator's answer and callbacks must reach the call's owner.
        config, call_id, base = self._config, self._record.id, self._config.instance_url
        return {
            "to": number,
            "from_": config.twilio.number,
            "url": operator_twiml_url(base, call_id),
            "status_callback": status_callback_url(base, call_id, str(Role.OPERATOR)),
            "timeout_s": config.operators.ring_timeout_s,
        }

    async def watch(self) -> None:
        """After the answer: the operator's terminal status ends the call (``operator_hangup``)."""
        sid = self._record.operator_sid
        async for item in self._events:
            if not isinstance(item, StatusEvent) or item.call_sid != sid:
                continue
            if item.status in TERMINAL_STATUSES:
                raise CallEnded(EndReason.OPERATOR_HANGUP, f"status {item.status}")

    # ---- the end --------------------------------------------------------------------------------

    def end(self, reason: EndReason) -> None:
        """The call is over: no more dialling; every operator call Twilio may still have is
        ended in the background (hung up if answered, cancelled if ringing; not the one we
        talked to when the operator hung up), and any a late create reports will be."""
        self._events_send.close()
        self.legs.end(wanted_gone=reason is EndReason.OPERATOR_HANGUP)
