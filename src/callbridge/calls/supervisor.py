"""``CallSupervisor``: admits calls, owns the nursery every call runs in, drains on shutdown.

Resource handling: ``run`` holds the calls nursery for the daemon's lifetime; every
``CallSession.run`` is a child of it, never of a request handler, and so is the work that outlives
a call (its operator legs' creates and hang-ups). Shutdown (``drain``) gives live calls
``server.shutdown_grace_s``, then ends the rest with reason ``shutdown``: each hangs up its legs at
Twilio while its Palabra links say goodbye, both bounded by ``SHUTDOWN_END_S``, so the daemon
exits within ``server.shutdown_grace_s + EXIT_WITHIN_S`` even when Palabra or Twilio is slow.

Error handling: ``CallSession.run`` turns every failure inside a call into an end reason, but a bug
in its cleanup or summary would still leave it. ``_run_call`` is the last resort: such an
exception is logged (``call_crashed``, with the traceback) and counted (``crashed_calls``) and
never reaches the calls nursery, so the other calls go on. What is not an ``Exception``
(``trio.Cancelled``, ``KeyboardInterrupt``) still propagates.

Capacity is reserved at the incoming-call webhook (``admit``), not when media connects, so a burst
of calls cannot overshoot ``server.max_calls`` while their media is still on the way. It is
reserved through an ``Admission`` (``callbridge.cluster``): this process's own count, or in
cluster mode one count across every instance, taken atomically in Redis. The slot is released
when the call has ended (shielded, bounded by ``RELEASE_TIMEOUT_S``; a slot whose release never
reached Redis lapses by itself).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import attrs
import trio

from callbridge.calls.operator_legs import OperatorLegs, StatusEvent
from callbridge.calls.session import CallDeps, CallSession
from callbridge.cluster.admission import Admission, LocalAdmission
from callbridge.errors import non_exceptions
from callbridge.log import get_logger
from callbridge.records import CallRecord, EndReason, new_call_id
from callbridge.roles import Role
from callbridge.routing import CallerLanguage, LanguageRules
from callbridge.telephony.status import StatusUpdate

__all__ = ["EXIT_WITHIN_S", "SHUTDOWN_END_S", "CallSupervisor", "EndedCall"]

log = get_logger("callbridge.supervisor")

# Ended calls remembered so late webhooks (status callbacks, <Connect action>) for them are
# recognised and answered calmly instead of with 404s.
RECENT_CALLS = 500
# After the grace period, how long the calls still live get to end at Twilio and say goodbye to
# Palabra (both at once), and operator legs to settle; the web server and the store close after.
SHUTDOWN_END_S: Final = 2.0
# The promise: the daemon exits within ``server.shutdown_grace_s`` + this after SIGTERM.
EXIT_WITHIN_S: Final = 5.0
# Giving an ended call's admission slot back may not take longer (a shared count is remote).
RELEASE_TIMEOUT_S: Final = 2.0


@attrs.frozen
class EndedCall:
    """All that is kept of an ended call: enough to answer its late webhooks, and its operator
    legs until Twilio says they are over. The call's media state (mixers, resamplers, legs) goes
    with its ``CallSession``."""

    record: CallRecord
    operator_legs: OperatorLegs
    ended: bool = True

    def operator_answered(self, call_sid: str) -> bool:
        """An operator picked up a call this ended call placed: ``<Hangup/>`` (and noted, so
        its number stays held until Twilio reports that leg over)."""
        self.operator_legs.on_status(StatusEvent(call_sid, "in-progress"))
        return False

    def on_status(self, role: Role, update: StatusUpdate) -> None:
        """A late callback: a leg learnt now is cancelled; a terminal status settles its leg."""
        if role is Role.OPERATOR:
            self.operator_legs.on_status(StatusEvent(update.call_sid, update.call_status))

    def stream_ended(self, role: Role) -> None:
        """The stream of an ended call: nothing left to end."""


class CallSupervisor:
    """``admission`` counts the calls against ``server.max_calls``: this process's own by
    default, the cluster's in cluster mode (``Cluster.admission``)."""

    def __init__(self, deps: CallDeps, admission: Admission | None = None) -> None:
        self._deps = deps
        self._admission = admission or LocalAdmission(deps.config.server.max_calls)
        self._rules = LanguageRules.from_config(deps.config)
        self._nursery: trio.Nursery | None = None
        self._draining = False
        self._calls: dict[str, CallSession] = {}
        self._by_caller_sid: dict[str, CallSession] = {}
        self._recent: OrderedDict[str, EndedCall] = OrderedDict()
        self._idle = trio.Event()
        self._idle.set()
        self.crashed_calls = 0  # calls whose own end handling failed (``call_crashed``)

    @property
    def active_count(self) -> int:
        return len(self._calls)

    @property
    def draining(self) -> bool:
        return self._draining

    def sessions(self) -> list[CallSession]:
        """The live calls, now (a copy: safe to iterate while calls end)."""
        return list(self._calls.values())

    def active_records(self) -> list[CallRecord]:
        return [session.record for session in self._calls.values()]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def admit(
        self, *, caller_sid: str, caller_number: str, language: CallerLanguage | None = None
    ) -> CallSession | None:
        """Reserve capacity for an incoming call and start it; ``None`` means refuse (busy).

        ``language`` is the caller's, as the webhook decided it (``LanguageRules.decide``);
        without one, the rules decide from the number alone, skipping the menu.
        A repeated webhook for the same CallSid returns the call already running. Refused while
        draining, and when the admission has no slot (every slot taken, or a shared count that
        cannot be reached).
        """
        existing = self._by_caller_sid.get(caller_sid)
        if existing is not None:
            return existing
        if self._draining or self._nursery is None:
            self._refuse(caller_sid, "draining")
            return None
        call_id = new_call_id()
        reserved = await self._admission.reserve(call_id)
        existing = self._by_caller_sid.get(caller_sid)  # a repeat may have won meanwhile
        if existing is not None or self._draining or not reserved:
            if reserved:
                await self._release(call_id)
            if existing is None:
                self._refuse(caller_sid, "draining" if self._draining else "max_calls")
            return existing
        chosen = language or self._rules.without_menu(caller_number)
        record = CallRecord(
            id=call_id,
            caller_sid=caller_sid,
            caller_number=caller_number,
            caller_language=chosen.language,
            operator_language=self._deps.config.languages.operator,
            caller_language_source=chosen.source,
        )
        session = CallSession(self._deps, record, self._nursery)
        self._calls[record.id] = session
        self._by_caller_sid[caller_sid] = session
        self._idle = trio.Event()
        self._nursery.start_soon(self._run_call, session, name=f"call-{record.id}")
        return session

    def _refuse(self, caller_sid: str, reason: str) -> None:
        log.warning(
            "call_refused", caller_sid=caller_sid, reason=reason, active_calls=len(self._calls)
        )

    async def _release(self, call_id: str) -> None:
        """Give the call's slot back: shielded (the call's task may be cancelled) and bounded."""
        with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT_S) as scope:
            await self._admission.release(call_id)
        if scope.cancelled_caught:
            log.warning("admission_release_timed_out", call_id=call_id)

    def find(self, call_id: str) -> CallSession | None:
        """A live call."""
        return self._calls.get(call_id)

    def find_any(self, call_id: str) -> CallSession | EndedCall | None:
        """A live or recently ended call."""
        return self._calls.get(call_id) or self._recent.get(call_id)

    async def _run_call(self, session: CallSession) -> None:
        try:
            await session.run()
        except BaseException as exc:
            rest = self._last_resort(session, exc)
            if rest is exc:
                raise
            if rest is not None:
                raise rest from None
        finally:
            self._calls.pop(session.record.id, None)
            self._by_caller_sid.pop(session.record.caller_sid, None)
            self._recent[session.record.id] = EndedCall(session.record, session.operator_legs)
            while len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
            if not self._calls:
                self._idle.set()
            await self._release(session.record.id)

    def _last_resort(self, session: CallSession, exc: BaseException) -> BaseException | None:
        """Log and count the ``Exception`` part of what left a call; the rest, to re-raise."""
        rest = non_exceptions(exc)
        if rest is exc:
            return exc
        self.crashed_calls += 1
        bug = exc.split(Exception)[0] if isinstance(exc, BaseExceptionGroup) else exc
        log.error("call_crashed", call_id=session.record.id, error=repr(bug), exc_info=bug)
        return rest

    async def drain(self, grace_s: float) -> None:
        """Stop admitting; wait up to ``grace_s`` for live calls to end, then end the rest
        (``cancel_all``) and wait for them, and for their operator legs to settle, at most
        ``SHUTDOWN_END_S`` more."""
        self._draining = True
        with trio.move_on_after(grace_s):
            await self._idle.wait()
        deadline = self.cancel_all()
        await self._idle.wait()  # bounded: every call's end is bounded by ``deadline``
        with trio.move_on_at(deadline):
            for ended in list(self._recent.values()):
                await ended.operator_legs.settled.wait()

    def cancel_all(self) -> float:
        """End every live call now (reason ``shutdown``); each still hangs up its legs, by the
        deadline returned (trio time, ``SHUTDOWN_END_S`` from now)."""
        deadline = trio.current_time() + SHUTDOWN_END_S
        for session in list(self._calls.values()):
            session.cancel(EndReason.SHUTDOWN, deadline)
        return deadline
