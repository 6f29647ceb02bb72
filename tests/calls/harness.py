"""A call supervisor on fakes, on the mock clock: admit a call, ring, answer, bridge, end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from callbridge.calls.session import CallDeps, CallSession
from callbridge.calls.supervisor import CallSupervisor
from callbridge.cluster.admission import Admission
from callbridge.config import Config, load_config
from callbridge.roles import Role
from callbridge.routing import CallerLanguage, LanguageOperatorPool
from callbridge.telephony.status import StatusUpdate
from tests.calls.fakes import FakeControl, FakeLinks, FakePhone, FakeSink, role_freq, twilio_side

OPERATORS = ["+15550000001", "+15550000002", "+15550000003"]
CALLER_SID = "CA" + "c" * 32


def make_config(**env: str) -> Config:
    base = {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_NUMBER": "+15559990000",
        "PALABRA_API_KEY": "key",
        "CALLBRIDGE_OPERATORS_NUMBERS": ",".join(OPERATORS),
        "CALLBRIDGE_SERVER_PUBLIC_URL": "https://bridge.example.com",
        "CALLBRIDGE_MEDIA_LEG_IDLE_TIMEOUT_S": "3",
    }
    return load_config(None, {**base, **env})


@attrs.define
class Harness:
    config: Config
    control: FakeControl
    links: FakeLinks
    sink: FakeSink
    supervisor: CallSupervisor
    nursery: trio.Nursery
    pool: LanguageOperatorPool

    def status(self, session: CallSession, sid: str, status: str, seq: int = 0) -> None:
        session.on_status(Role.OPERATOR, StatusUpdate(sid, status, seq, None, None, None))

    async def dialed(self, count: int = 1) -> str:
        """Wait until ``count`` operator calls were created; the last one's sid."""
        while sum(1 for a in self.control.actions if a[0] == "create") < count:
            await trio.sleep(0.01)
        return [a for a in self.control.actions if a[0] == "create"][-1][2]

    async def caller_on_hold(self, session: CallSession) -> FakePhone:
        await trio.testing.wait_all_tasks_blocked()
        socket_in, inbound = twilio_side()
        leg = session.attach_leg(Role.CALLER, inbound)
        assert leg is not None
        phone = FakePhone(leg, socket_in, CALLER_SID, role_freq(Role.CALLER))
        self.nursery.start_soon(phone.listen)
        await phone.start()
        self.nursery.start_soon(phone.stream)
        return phone

    async def caller_call(
        self, language: CallerLanguage | None = None, number: str = "+15551112222"
    ) -> tuple[CallSession, FakePhone]:
        """A call admitted (the caller's ``language`` as the webhook decided it, else by the
        rules without the menu) and its caller's stream on hold."""
        session = await self.supervisor.admit(
            caller_sid=CALLER_SID, caller_number=number, language=language
        )
        assert session is not None
        return session, await self.caller_on_hold(session)

    async def bridged_call(
        self, operator_phase_s: float = 0.0, language: CallerLanguage | None = None
    ) -> tuple[CallSession, FakePhone, FakePhone]:
        session, caller = await self.caller_call(language)
        sid = await self.dialed()
        self.status(session, sid, "ringing", 1)
        operator = await self.operator_joins(session, sid, operator_phase_s)
        return session, caller, operator

    async def operator_joins(
        self, session: CallSession, sid: str, phase_s: float = 0.0
    ) -> FakePhone:
        """The operator of ``sid`` answers (the answer webhook) and their stream connects; back
        once the call is bridged."""
        assert session.operator_answered(sid)
        await trio.testing.wait_all_tasks_blocked()
        socket_in, inbound = twilio_side()
        leg = session.attach_leg(Role.OPERATOR, inbound)
        assert leg is not None
        operator = FakePhone(leg, socket_in, sid, role_freq(Role.OPERATOR))
        operator.phase_s = phase_s
        self.nursery.start_soon(operator.listen)
        self.nursery.start_soon(operator.echo_marks)
        await operator.start()
        self.nursery.start_soon(operator.stream)
        while session.record.status != "connected":
            await trio.sleep(0.01)
        return operator

    async def ended(self, session: CallSession) -> str:
        with trio.fail_after(60):
            while self.supervisor.find(session.record.id) is not None:
                await trio.sleep(0.01)
        assert session.record.end_reason is not None
        return session.record.end_reason

    def assert_nothing_left(self, *phones: FakePhone) -> None:
        assert self.supervisor.active_count == 0
        assert sorted(self.pool.idle) == sorted(op.number for op in self.pool.operators), (
            "operator number leaked"
        )
        assert all(link.closed for link in self.links.opened.values())
        for phone in phones:
            assert phone.received_closed.is_set(), "media socket left open"
        assert self.sink.records[-1]["status"] == "ended"


@asynccontextmanager
async def harness(
    config: Config | None = None, admission: Admission | None = None, **links: Any
) -> AsyncIterator[Harness]:
    config = config or make_config()
    control, fake_links, sink = FakeControl(), FakeLinks(**links), FakeSink()
    pool = LanguageOperatorPool.from_config(config)
    deps = CallDeps(config, control, fake_links, sink, pool)
    supervisor = CallSupervisor(deps, admission)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        yield Harness(config, control, fake_links, sink, supervisor, nursery, pool)
        nursery.cancel_scope.cancel()
