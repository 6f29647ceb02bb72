"""``OperatorLegs``: every operator call one call placed, from its create until Twilio says it is over.

Twilio holds the truth about calls, and a REST create cannot be undone: once it is sent, the
operator's phone may ring whatever happens to the call that asked for it. So the ledger, not the
call's nursery, owns what follows a create:

- the create itself runs in ``background`` (the supervisor's nursery, which outlives the call),
  so its answer is learnt even when the call ended meanwhile (the caller hung up while it rang);
- an operator CallSid learnt from a status callback or the answer webhook (both carry the call id
  in their URL) is adopted as the current attempt's leg while that attempt's create has not
  answered (or failed in a way that may have placed the call): Twilio's webhooks may come first;
- any CallSid learnt that is not wanted (a call that ended, an attempt given up, a repeated
  create) is cancelled, or hung up if it was answered meanwhile;
- the operator's number stays held in the pool until every leg on it is over: a terminal status
  callback, or Twilio accepting our cancel or hang-up. If Twilio never says (callbacks lost, REST
  down), the number is released ``hold_limit_s`` after the call ended, with a warning.

Events reach the ledger synchronously (``on_status``, the create's answer), so its view is exact
at every moment; those that matter to the dialer are passed on through ``forward`` while the
call is live. https://www.twilio.com/docs/voice/api/call-resource (create, update, status
callbacks, which "may arrive out of order").
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
import trio

from callbridge.calls.ports import CallControl, OperatorPool
from callbridge.errors import TwilioError
from callbridge.log import get_logger
from callbridge.routing import OperatorPick
from callbridge.telephony.status import TERMINAL_STATUSES

__all__ = [
    "ANSWERED_STATUSES",
    "UNCERTAIN_CREATE_WAIT_S",
    "CreateResult",
    "OperatorLegs",
    "StatusEvent",
    "start_guarded",
]

log = get_logger("callbridge.operator_legs")

ANSWERED_STATUSES: Final = frozenset({"in-progress", "answered"})
# A create that failed this way may have placed the call anyway (500/502/504, or no answer).
UNCERTAIN_CREATE_STATUSES: Final = frozenset({None, 500, 502, 504})
# How long a status callback of such a call may take to show up before we stop expecting it.
UNCERTAIN_CREATE_WAIT_S: Final = 3.0
# Returning a number to the pool may not wait longer (a shared pool is remote).
RELEASE_TIMEOUT_S: Final = 2.0


def start_guarded(
    nursery: trio.Nursery, fn: Callable[..., Awaitable[None]], *args: object, name: str
) -> None:
    """Run ``fn(*args)`` in ``nursery`` (the supervisor's, shared by every call): a bug in it is
    logged (``background_task_failed``), never raised into that nursery and its other calls."""

    async def guarded() -> None:
        try:
            await fn(*args)
        except Exception:  # the last resort of work that outlives a call
            log.exception("background_task_failed", task=name)

    nursery.start_soon(guarded, name=name)


@attrs.frozen
class StatusEvent:
    """A status change of an operator leg, from a status callback or the answer webhook."""

    call_sid: str
    status: str  # Twilio CallStatus ("ringing", "in-progress", "no-answer", ...)


@attrs.frozen
class CreateResult:
    """What one create came to: the call's SID, or none (``uncertain``: it may exist anyway)."""

    token: int
    sid: str | None
    uncertain: bool = False
    error: str = ""


@attrs.define
class _Leg:
    number: str | None
    status: str = "queued"
    over: bool = False
    ending: bool = False  # our cancel or hang-up is on its way
    done: trio.Event = attrs.Factory(trio.Event)  # our end attempt finished (either way)


class OperatorLegs:
    """The operator legs of one call; see the module docstring."""

    def __init__(
        self,
        control: CallControl,
        operators: OperatorPool,
        background: trio.Nursery,
        *,
        hold_limit_s: float,
        forward: Callable[[StatusEvent | CreateResult], None],
    ) -> None:
        self._control = control
        self._operators = operators
        self._background = background
        self._hold_limit_s = hold_limit_s
        self._forward = forward
        self._legs: dict[str, _Leg] = {}
        self._creates: dict[int, str] = {}  # create token -> number, until settled
        self._tokens = itertools.count(1)
        self._expect: int | None = None  # the current attempt's create: adopts an unknown SID
        self._attempt: str | None = None  # the number the dialer is ringing (held)
        self._held: set[str] = set()
        self.wanted: str | None = None  # the current attempt's (or the answered) leg
        self.ended = False
        self.settled = trio.Event()

    # ---- the dialer's side -------------------------------------------------------------------

    async def acquire(self, exclude: set[str], caller_language: str | None) -> OperatorPick | None:
        """An idle operator not in ``exclude`` (one who speaks ``caller_language`` first), now
        held for a new attempt."""
        pick = await self._operators.acquire(exclude, caller_language)
        if pick is not None:
            self._held.add(pick.number)
            self._attempt, self._expect, self.wanted = pick.number, None, None
        return pick

    def start_create(self, number: str, create: Mapping[str, Any]) -> int:
        """Create the operator's call (``CallControl.create_call(**create)``) in the background;
        its ``CreateResult`` is forwarded. Returns the create's token."""
        token = next(self._tokens)
        self._creates[token] = number
        self._expect = token
        start_guarded(self._background, self._create, token, dict(create), name=f"create-{token}")
        return token

    def give_up_create(self, token: int) -> None:
        """An uncertain create whose call never showed up: stop expecting it."""
        self._creates.pop(token, None)
        if self._expect == token:
            self._expect = None
        self._release_free()

    def abandon_attempt(self) -> None:
        """The attempt is given up (no answer in time): its leg, if any, is cancelled, and one
        its create may still report will be."""
        if self.wanted is not None:
            self._end_leg(self.wanted)
        self.wanted = self._expect = None

    def attempt_over(self) -> None:
        """The dialer moves on: the attempt's number is released once nothing holds it."""
        self._attempt = self.wanted = self._expect = None
        self._release_free()

    def is_wanted(self, sid: str) -> bool:
        return not self.ended and sid == self.wanted

    def number_of(self, sid: str) -> str | None:
        leg = self._legs.get(sid)
        return leg.number if leg is not None else None

    def answered(self, sid: str) -> bool:
        """Twilio fetched the answer webhook for ``sid``: True if it is the leg we want (it is
        adopted if its create has not answered yet), False if it is to be hung up."""
        self.on_status(StatusEvent(sid, "in-progress"))
        return self.is_wanted(sid)

    # ---- events --------------------------------------------------------------------------------

    def on_status(self, event: StatusEvent) -> None:
        """A status callback or answer about ``event.call_sid`` (live or ended call)."""
        sid, status = event.call_sid, event.status
        leg = self._legs.get(sid)
        if leg is None:
            leg = self._learn(sid, token := self._adoptable())
            if token is not None:  # a webhook came before (or instead of) the create's answer
                log.info("operator_call_found", operator=leg.number, operator_sid=sid)
        elif leg.over:
            return  # a repeat or a late, reordered callback: the first terminal status wins
        leg.status = status
        if status in TERMINAL_STATUSES:
            self._over(leg)
        elif sid != self.wanted or self.ended:
            self._end_leg(sid)
        if not self.ended:
            self._forward(event)

    def _adoptable(self) -> int | None:
        """The current attempt's create token, if an unknown SID is to be taken as its call."""
        if self.ended or self.wanted is not None or self._expect not in self._creates:
            return None
        return self._expect

    def _learn(self, sid: str, token: int | None, number: str | None = None) -> _Leg:
        if token is not None:
            number = self._creates.pop(token, None)
        leg = self._legs[sid] = _Leg(number or self._guess_number())
        if token is not None:
            self.wanted = sid
            self._expect = None
        else:
            log.warning("operator_call_orphaned", operator_sid=sid, ended=self.ended)
        return leg

    def _guess_number(self) -> str | None:
        """The number an unknown, unwanted call most likely rings: an unsettled create's."""
        return next(iter(self._creates.values()), None)

    async def _create(self, token: int, create: dict[str, Any]) -> None:
        try:
            info = await self._control.create_call(**create)
        except TwilioError as exc:
            uncertain = exc.status in UNCERTAIN_CREATE_STATUSES
            self._created(CreateResult(token, None, uncertain, str(exc)))
        else:
            self._created(CreateResult(token, info.sid))

    def _created(self, result: CreateResult) -> None:
        token = result.token
        if result.sid is None:
            if not result.uncertain:
                self.give_up_create(token)
            elif self.ended or self._expect != token:
                # It may ring anyway: its number stays held a moment for a callback to show it.
                start_guarded(self._background, self._give_up_later, token, name="create-uncertain")
        elif result.sid not in self._legs:
            if self._adoptable() == token:
                self._learn(result.sid, token)
            else:
                self._learn(result.sid, None, self._creates.pop(token, None))
                self._end_leg(result.sid)
        else:
            self._creates.pop(token, None)  # its callbacks came first: already known
            self._release_free()
        if not self.ended:
            self._forward(result)

    async def _give_up_later(self, token: int) -> None:
        await trio.sleep(UNCERTAIN_CREATE_WAIT_S)
        self.give_up_create(token)

    # ---- the end -------------------------------------------------------------------------------

    def end(self, *, wanted_gone: bool = False) -> None:
        """The call is over: end every leg Twilio may still have (the wanted one too, unless
        ``wanted_gone``: its party hung up). Legs learnt later are ended as they show up; the
        numbers are released as their legs end. Synchronous: the REST steps run in the
        background (``wait_ended`` waits for them)."""
        if self.ended:
            return
        self.ended = True
        self._forward = _ignore  # nothing goes to the dialer now; don't keep it alive
        self._attempt = self._expect = None
        if wanted_gone and self.wanted is not None:
            self._over(self._legs[self.wanted])
        for sid in list(self._legs):
            self._end_leg(sid)
        self._release_free()
        if not self.settled.is_set():
            start_guarded(self._background, self._expire, name="operator-legs-expire")

    async def wait_ended(self) -> None:
        """Until our cancel or hang-up of every leg known at ``end`` has been answered."""
        for leg in list(self._legs.values()):
            await leg.done.wait()

    def _end_leg(self, sid: str) -> None:
        leg = self._legs[sid]
        if leg.over or leg.ending:
            return
        leg.ending = True
        leg.done = trio.Event()
        start_guarded(self._background, self._end_at_twilio, sid, leg, name=f"end-{sid}")

    async def _end_at_twilio(self, sid: str, leg: _Leg) -> None:
        """Cancel (ringing) or hang up (answered); Twilio accepting it means the leg is over."""
        answered = leg.status in ANSWERED_STATUSES
        try:
            await (self._control.hangup(sid) if answered else self._control.cancel(sid))
        except TwilioError as exc:
            leg.ending = False  # still held: a terminal callback or the hold limit settles it
            log.warning("operator_leg_end_failed", operator_sid=sid, error=str(exc), code=exc.code)
        else:
            log.info(
                "operator_leg_ended", operator_sid=sid, action="hangup" if answered else "cancel"
            )
            self._over(leg)
        finally:
            leg.done.set()

    def _over(self, leg: _Leg) -> None:
        leg.over, leg.ending = True, False
        leg.done.set()
        self._release_free()

    def _release_free(self) -> None:
        """Give back every held number no attempt, create or live leg still needs."""
        busy = {leg.number for leg in self._legs.values() if not leg.over}
        busy |= set(self._creates.values())
        busy.add(self._attempt)
        for number in sorted(self._held - busy):
            self._held.discard(number)
            start_guarded(self._background, self._release, number, name=f"release-{number}")
        if self.ended and not self._held and not self._creates:
            self.settled.set()

    async def _release(self, number: str) -> None:
        # A shared pool is remote (Redis): bounded, so a slow store cannot hold the call's end.
        with trio.move_on_after(RELEASE_TIMEOUT_S):
            await self._operators.release(number)
            return
        log.warning("operator_release_timed_out", operator=number, timeout_s=RELEASE_TIMEOUT_S)

    async def _expire(self) -> None:
        """Twilio never said: after ``hold_limit_s`` give the numbers back anyway."""
        with trio.move_on_after(self._hold_limit_s):
            await self.settled.wait()
            return
        unsettled = sorted(sid for sid, leg in self._legs.items() if not leg.over)
        log.warning("operator_legs_unsettled", operator_sids=unsettled, numbers=sorted(self._held))
        self._creates.clear()
        for leg in self._legs.values():
            leg.over = True
        self._release_free()

    def __repr__(self) -> str:
        live = [sid for sid, leg in self._legs.items() if not leg.over]
        return f"<OperatorLegs live={live} held={sorted(self._held)} ended={self.ended}>"


def _ignore(_: StatusEvent | CreateResult) -> None:
    """Where events go once the call is over: the ledger alone acts on them."""
