"""``CallSupervisor``: admits calls, owns the nursery every call runs in, drains on shutdown.

Resource handling: ``run`` holds the calls nursery for the daemon's lifetime; every
``CallSession.run`` is a child of it, never of a request handler. Cancelling it (shutdown past the
grace period) ends every call with reason ``shutdown``, each still hanging up its legs.

Capacity is reserved at the incoming-call webhook (``admit``), not when media connects, so a burst
of calls cannot overshoot ``server.max_calls`` while their media is still on the way.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs
import trio

from callbridge.calls.session import CallDeps, CallSession
from callbridge.log import get_logger
from callbridge.records import CallRecord, EndReason, new_call_id
from callbridge.roles import Role
from callbridge.routing import CallerLanguage, LanguageRules
from callbridge.telephony.status import StatusUpdate

__all__ = ["CallSupervisor", "EndedCall"]

log = get_logger("callbridge.supervisor")

# Ended calls remembered so late webhooks (status callbacks, <Connect action>) for them are
# recognised and answered calmly instead of with 404s.
RECENT_CALLS = 500


@attrs.frozen
class EndedCall:
    """All that is kept of an ended call: enough to answer its late webhooks. The call's media
    state (mixers, resamplers, legs) goes with its ``CallSession``."""

    record: CallRecord
    ended: bool = True

    def operator_answered(self, call_sid: str) -> bool:
        return False

    def on_status(self, role: Role, update: StatusUpdate) -> None:
        """Late callbacks (our own hang-up's ``completed``, repeats) change nothing."""

    def stream_ended(self, role: Role) -> None:
        """The stream of an ended call: nothing left to end."""


class CallSupervisor:
    def __init__(self, deps: CallDeps) -> None:
        self._deps = deps
        self._rules = LanguageRules.from_config(deps.config)
        self._nursery: trio.Nursery | None = None
        self._draining = False
        self._calls: dict[str, CallSession] = {}
        self._by_caller_sid: dict[str, CallSession] = {}
        self._recent: OrderedDict[str, EndedCall] = OrderedDict()
        self._idle = trio.Event()
        self._idle.set()

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

    def admit(
        self, *, caller_sid: str, caller_number: str, language: CallerLanguage | None = None
    ) -> CallSession | None:
        """Reserve capacity for an incoming call and start it; ``None`` means refuse (busy).

        ``language`` is the caller's, as the webhook decided it (``LanguageRules.decide``);
        without one, the rules decide from the number alone, skipping the menu.
        A repeated webhook for the same CallSid returns the call already running.
        """
        existing = self._by_caller_sid.get(caller_sid)
        if existing is not None:
            return existing
        config = self._deps.config
        if self._draining or self._nursery is None or len(self._calls) >= config.server.max_calls:
            log.warning(
                "call_refused",
                caller_sid=caller_sid,
                reason="draining" if self._draining else "max_calls",
                active_calls=len(self._calls),
            )
            return None
        chosen = language or self._rules.without_menu(caller_number)
        record = CallRecord(
            id=new_call_id(),
            caller_sid=caller_sid,
            caller_number=caller_number,
            caller_language=chosen.language,
            operator_language=config.languages.operator,
            caller_language_source=chosen.source,
        )
        session = CallSession(self._deps, record)
        self._calls[record.id] = session
        self._by_caller_sid[caller_sid] = session
        self._idle = trio.Event()
        self._nursery.start_soon(self._run_call, session, name=f"call-{record.id}")
        return session

    def find(self, call_id: str) -> CallSession | None:
        """A live call."""
        return self._calls.get(call_id)

    def find_any(self, call_id: str) -> CallSession | EndedCall | None:
        """A live or recently ended call."""
        return self._calls.get(call_id) or self._recent.get(call_id)

    async def _run_call(self, session: CallSession) -> None:
        try:
            await session.run()
        finally:
            self._calls.pop(session.record.id, None)
            self._by_caller_sid.pop(session.record.caller_sid, None)
            self._recent[session.record.id] = EndedCall(session.record)
            while len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
            if not self._calls:
                self._idle.set()

    async def drain(self, grace_s: float) -> None:
        """Stop admitting; wait up to ``grace_s`` for live calls to end, then end the rest."""
        self._draining = True
        with trio.move_on_after(grace_s):
            await self._idle.wait()
        self.cancel_all()
        await self._idle.wait()

    def cancel_all(self) -> None:
        """End every live call now (reason ``shutdown``); each still hangs up its legs."""
        for session in list(self._calls.values()):
            session.cancel(EndReason.SHUTDOWN)
