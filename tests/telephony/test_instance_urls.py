"""Cluster mode's two kinds of URL (docs/cluster.md): the number's voice webhook is requested (and
signed) at the shared ``server.public_url``; every URL one instance hands Twilio for a call it owns
starts with its own ``cluster.instance_url``, and is checked against that."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from quart_trio import QuartTrio
from structlog.testing import capture_logs

from callbridge.app import create_app
from callbridge.config import Config
from callbridge.services import Services
from callbridge.telephony.signature import SignatureChecker
from callbridge.telephony.webhooks import MAX_HANDOFFS
from tests.calls.fakes import FakeControl
from tests.calls.harness import OPERATORS, harness, make_config
from tests.telephony.test_media_socket import Socket, denied_with, upgrade
from tests.telephony.webhook_app import CALLER_SID, INCOMING, PUBLIC, build_app, post, sign

INSTANCE = "https://bridge.example.com/i/node-2"  # a path prefix the proxy strips
INSTANCE_WS = "wss://bridge.example.com/i/node-2"
PUBLIC_WS = "wss://bridge.example.com"


def cluster_config() -> Config:
    return make_config(CALLBRIDGE_CLUSTER_INSTANCE_URL=INSTANCE + "/")


@pytest.fixture
async def node(nursery: trio.Nursery) -> AsyncIterator[tuple[QuartTrio, Services, FakeControl]]:
    async for built in build_app(nursery, cluster_config()):
        yield built


async def incoming(quart_app: QuartTrio, services: Services) -> tuple[str, str]:
    response = await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
    assert response.status_code == 200
    return services.supervisor.active_records()[0].id, await response.get_data(as_text=True)


async def test_the_voice_webhook_is_checked_against_the_public_url(node: Any) -> None:
    quart_app, services, _ = node
    signed_for_instance = sign("/twiml/client", INCOMING, base=INSTANCE)
    response = await post(quart_app, "/twiml/client", INCOMING, signed_for_instance)
    assert response.status_code == 403 and services.counters["bad_signature"] == 1
    call_id, _ = await incoming(quart_app, services)
    assert call_id


async def test_the_callers_stream_and_connect_action_point_at_this_instance(node: Any) -> None:
    quart_app, services, _ = node
    call_id, body = await incoming(quart_app, services)
    assert f'<Stream url="{INSTANCE_WS}/media/{call_id}/caller">' in body
    assert f'action="{INSTANCE}/twiml/stream-ended/{call_id}/caller"' in body


async def test_per_call_webhooks_are_checked_against_the_instance_url(node: Any) -> None:
    quart_app, services, _ = node
    call_id, _ = await incoming(quart_app, services)
    path = f"/twilio/status/{call_id}/operator"
    form = {"CallSid": "CA" + "1" * 32, "CallStatus": "ringing"}
    assert (await post(quart_app, path, form, sign(path, form))).status_code == 403
    assert (await post(quart_app, path, form, sign(path, form, base=INSTANCE))).status_code == 204
    ended = f"/twiml/stream-ended/{call_id}/caller"
    response = await post(quart_app, ended, form, sign(ended, form, base=PUBLIC))
    assert response.status_code == 403
    assert services.counters["bad_signature"] == 2


async def test_the_media_upgrade_is_checked_against_the_instance_url(
    node: Any, nursery: trio.Nursery
) -> None:
    quart_app, services, _ = node
    call_id, _ = await incoming(quart_app, services)
    path = f"/media/{call_id}/caller"
    assert await denied_with(services, path, sign(path, {}, base=PUBLIC_WS)) == 403
    socket = Socket(path, sign(path, {}, base=INSTANCE_WS))
    nursery.start_soon(upgrade, services, socket)
    assert (await socket.next_event())["type"] == "websocket.accept"


def test_without_a_cluster_both_kinds_are_the_public_url() -> None:
    checker = SignatureChecker(make_config())
    form = {"CallSid": "CA" + "1" * 32}
    signature = sign("/twilio/status/c/operator", form)
    assert checker.check_http("/twilio/status/c/operator", "", form, signature)
    signature = sign("/twiml/client", form)
    assert checker.check_http("/twiml/client", "", form, signature, number_webhook=True)


async def test_the_operators_call_and_its_answer_point_at_this_instance(
    autojump_clock: Any,
) -> None:
    async with harness(cluster_config()) as h:
        session, caller, operator = await h.bridged_call()
        [(url, status_callback)] = h.control.create_urls
        call_id = session.record.id
        assert url == f"{INSTANCE}/twiml/operator/{call_id}"
        assert status_callback == f"{INSTANCE}/twilio/status/{call_id}/operator"
        assert session.record.operator_number in OPERATORS
        await caller.stop()
        await h.ended(session)
        del operator


async def test_the_operators_stream_points_at_this_instance(node: Any) -> None:
    quart_app, services, _ = node
    call_id, _ = await incoming(quart_app, services)
    path = f"/twiml/operator/{call_id}"
    form = {"CallSid": "CA" + "0" * 31 + "1", "CallStatus": "in-progress"}
    session = services.supervisor.find(call_id)
    assert session is not None
    with trio.fail_after(5):  # the dialer's create runs in the background
        while session.operator_legs.wanted is None:
            await trio.sleep(0.01)
    form["CallSid"] = session.operator_legs.wanted
    response = await post(quart_app, path, form, sign(path, form, base=INSTANCE))
    body = await response.get_data(as_text=True)
    assert f'<Stream url="{INSTANCE_WS}/media/{call_id}/operator">' in body
    assert f'action="{INSTANCE}/twiml/stream-ended/{call_id}/operator"' in body


async def test_the_language_menu_is_the_numbers_and_checked_against_the_public_url(
    nursery: trio.Nursery,
) -> None:
    """Twilio requests the menu's answer from the number's own flow, through the balancer: its
    ``<Gather action>`` is on the public URL, and its signature is checked against that."""
    config = cluster_config()
    config = attrs.evolve(config, languages=attrs.evolve(config.languages, menu=["en", "es"]))
    async for quart_app, _services, _ in build_app(nursery, config):
        response = await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        body = await response.get_data(as_text=True)
        assert f'action="{PUBLIC}/twiml/client/language"' in body
        menu, form = "/twiml/client/language", {**INCOMING, "Digits": "2"}
        refused = await post(quart_app, menu, form, sign(menu, form, base=INSTANCE))
        assert refused.status_code == 403
        answered = await post(quart_app, menu, form, sign(menu, form))
        answer = await answered.get_data(as_text=True)
        assert answered.status_code == 200 and f'<Stream url="{INSTANCE_WS}/media/' in answer


@attrs.define
class PeersReady:
    """``Cluster.others_take_calls`` as a test sets it."""

    ready: bool = True

    def others_take_calls(self) -> bool:
        return self.ready


async def test_a_draining_instance_hands_new_calls_back_to_the_balancer(
    nursery: trio.Nursery,
) -> None:
    async for _app, services, _ in build_app(nursery, cluster_config()):
        peers = PeersReady()
        services.cluster = peers  # type: ignore[assignment]
        quart_app = create_app(services)
        await services.supervisor.drain(0.0)
        with capture_logs() as logs:
            response = await post(
                quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING)
            )
        body = await response.get_data(as_text=True)
        assert f'<Redirect method="POST">{PUBLIC}/twiml/client?handoff=1</Redirect>' in body
        assert services.supervisor.active_count == 0
        assert services.counters["handed_off_calls"] == 1
        assert [e["caller_sid"] for e in logs if e["event"] == "call_handed_off"] == [CALLER_SID]
        # Handed back three times already (a balancer that keeps choosing draining instances):
        # the busy prompt, not a fourth redirect.
        path = f"/twiml/client?handoff={MAX_HANDOFFS}"
        response = await post(quart_app, path, INCOMING, sign(path, INCOMING))
        assert "busy" in await response.get_data(as_text=True)
        peers.ready = False  # nobody else takes calls: the busy prompt, as on a single daemon
        response = await post(quart_app, "/twiml/client", INCOMING, sign("/twiml/client", INCOMING))
        assert "busy" in await response.get_data(as_text=True)
