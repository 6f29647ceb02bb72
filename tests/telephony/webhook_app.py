"""An app for the Twilio-facing routes, on fake REST and Palabra; signed requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from quart_trio import QuartTrio
from twilio.request_validator import RequestValidator

from callbridge.app import create_app
from callbridge.calls.session import CallDeps
from callbridge.calls.supervisor import CallSupervisor
from callbridge.config import Config
from callbridge.routing import LanguageOperatorPool
from callbridge.services import Services
from callbridge.telephony.signature import SignatureChecker
from tests.calls.fakes import FakeControl, FakeLinks, FakeSink
from tests.calls.harness import make_config

PUBLIC = "https://bridge.example.com"
TOKEN = "token"
CALLER_SID = "CA" + "a" * 32


def sign(path: str, form: dict[str, str], base: str = PUBLIC) -> str:
    signature: str = RequestValidator(TOKEN).compute_signature(base + path, form)
    return signature


@pytest.fixture
async def app(nursery: trio.Nursery) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    async for built in build_app(nursery, make_config()):
        yield built


@pytest.fixture
async def small_app(
    nursery: trio.Nursery,
) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    async for built in build_app(nursery, make_config(CALLBRIDGE_SERVER_MAX_CALLS="2")):
        yield built


async def build_app(
    nursery: trio.Nursery, config: Config
) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    control = FakeControl()
    deps = CallDeps(
        config, control, FakeLinks(), FakeSink(), LanguageOperatorPool.from_config(config)
    )
    supervisor = CallSupervisor(deps)
    await nursery.start(supervisor.run)
    services = Services(config, None, supervisor, FakeSink(), SignatureChecker(config), Counter())  # type: ignore[arg-type]
    yield create_app(services), services, control
    supervisor.cancel_all()


async def post(app: QuartTrio, path: str, form: dict[str, str], signature: str | None) -> Any:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return await app.test_client().post(path, form=form, headers=headers)


INCOMING = {
    "CallSid": CALLER_SID,
    "From": "+15551112222",
    "To": "+15559990000",
    "CallStatus": "ringing",
}
