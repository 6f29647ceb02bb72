"""Admission at the voice webhook: a slot per call, reserved before the call starts (the count may be
the whole cluster's, in Redis), released when the call ends, and never leaked by a race."""

from __future__ import annotations

from typing import Any

import attrs
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.calls.supervisor import RELEASE_TIMEOUT_S
from callbridge.cluster.admission import LocalAdmission
from callbridge.records import EndReason
from tests.calls.harness import CALLER_SID, harness, make_config

OTHER_SID = "CA" + "b" * 32


@attrs.define
class SharedCount:
    """An admission like Redis': each reserve and release waits (a round trip), the count is
    shared with calls elsewhere (``elsewhere``), and ``gate`` can hold a reservation."""

    max_calls: int
    elsewhere: int = 0
    gate: trio.Event = attrs.Factory(trio.Event)
    slots: set[str] = attrs.Factory(set)
    released: list[str] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        self.gate.set()

    async def reserve(self, call_id: str) -> bool:
        await self.gate.wait()
        await trio.sleep(0.001)
        if len(self.slots) + self.elsewhere >= self.max_calls:
            return False
        self.slots.add(call_id)
        return True

    async def release(self, call_id: str) -> None:
        await trio.sleep(0.001)
        self.slots.discard(call_id)
        self.released.append(call_id)

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self.slots)


async def test_a_slot_is_held_for_the_call_and_released_when_it_ends(autojump_clock: Any) -> None:
    admission = LocalAdmission(2)
    async with harness(admission=admission) as h:
        session, caller, _operator = await h.bridged_call()
        assert admission.held == {session.record.id}
        await caller.stop()
        await h.ended(session)
        await trio.testing.wait_all_tasks_blocked()
        assert admission.held == frozenset()


async def test_calls_elsewhere_in_the_cluster_count_against_max_calls(autojump_clock: Any) -> None:
    """Nine calls run on other instances, max_calls is 10: this instance takes one more."""
    admission = SharedCount(max_calls=10, elsewhere=9)
    async with harness(make_config(CALLBRIDGE_SERVER_MAX_CALLS="10"), admission) as h:
        session, caller, _operator = await h.bridged_call()
        with capture_logs() as logs:
            refused = await h.supervisor.admit(caller_sid=OTHER_SID, caller_number="+1")
        assert refused is None and h.supervisor.active_count == 1
        [log] = [e for e in logs if e["event"] == "call_refused"]
        assert log["reason"] == "max_calls"
        await caller.stop()
        await h.ended(session)
        await trio.testing.wait_all_tasks_blocked()
        assert admission.released == [session.record.id] and not admission.slots


async def test_a_repeated_webhook_during_the_reservation_starts_one_call(
    autojump_clock: Any,
) -> None:
    admission = SharedCount(max_calls=10)
    admission.gate = trio.Event()
    async with harness(admission=admission) as h:
        got: list[Any] = []

        async def webhook() -> None:
            got.append(await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(webhook)
            nursery.start_soon(webhook)
            await trio.testing.wait_all_tasks_blocked()
            admission.gate.set()
        assert got[0] is got[1] is not None
        assert h.supervisor.active_count == 1
        await trio.testing.wait_all_tasks_blocked()
        assert admission.slots == {got[0].record.id}  # the loser's slot went back
        assert len(admission.released) == 1
        got[0].cancel(EndReason.SHUTDOWN)
        await h.ended(got[0])


async def test_a_drain_that_starts_during_the_reservation_refuses_and_releases(
    autojump_clock: Any,
) -> None:
    admission = SharedCount(max_calls=10)
    admission.gate = trio.Event()
    async with harness(admission=admission) as h:
        got: list[Any] = []

        async def webhook() -> None:
            got.append(await h.supervisor.admit(caller_sid=CALLER_SID, caller_number="+1"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(webhook)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(h.supervisor.drain, 1.0)
            await trio.testing.wait_all_tasks_blocked()
            admission.gate.set()
        assert got == [None] and h.supervisor.active_count == 0
        assert not admission.slots and len(admission.released) == 1


async def test_the_release_survives_a_shutdown(autojump_clock: Any) -> None:
    """A drain cancels the call; its slot still goes back (the release is shielded)."""
    admission = SharedCount(max_calls=10)
    async with harness(admission=admission) as h:
        session, _caller, _operator = await h.bridged_call()
        await h.supervisor.drain(0.5)
        with trio.fail_after(RELEASE_TIMEOUT_S):  # the mock clock's seconds
            while admission.slots:
                await trio.sleep(0.001)
        assert session.record.end_reason == "shutdown"
        assert admission.released == [session.record.id] and not admission.slots
