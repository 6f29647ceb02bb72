"""LegReceiver: one leg's inbound messages, parsed, counted and routed; hang-ups and silence end
the call."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from callbridge.calls.receive import LegReceiver
from callbridge.errors import CallEnded
from callbridge.records import EndReason
from callbridge.roles import Role
from callbridge.telephony.legs import MediaLeg
from tests.calls.media_parts import (
    RecordingInput,
    mark_message,
    media_message,
    output,
    stop_message,
    tone,
)


def receiver(
    bridged: trio.Event, translator: RecordingInput | None = None, idle_s: float = 5.0
) -> tuple[LegReceiver, MediaLeg]:
    leg = MediaLeg.open(Role.CALLER)
    own, other = output(Role.CALLER, bridged=bridged), output(Role.OPERATOR, bridged=bridged)
    return (
        LegReceiver(
            leg,
            own_output=own,
            other_output=other,
            translator=translator,
            bridged=bridged,
            idle_s=idle_s,
        ),
        leg,
    )


async def run_until_ended(receiver: LegReceiver) -> CallEnded:
    with pytest.raises(CallEnded) as caught:
        await receiver.run()
    return caught.value


async def test_media_reaches_the_other_party_and_the_translator_only_once_bridged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bridged, translator = trio.Event(), RecordingInput()
    rx, leg = receiver(bridged, translator)
    other = rx._other
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.run)
        await leg.socket_in.send(media_message(tone(), 1))
        await trio.testing.wait_all_tasks_blocked()
        assert (other.mixer.original_queue_ms, len(translator.frames)) == (0, 0)
        bridged.set()
        await leg.socket_in.send(media_message(tone(), 2))
        await trio.testing.wait_all_tasks_blocked()
        assert other.mixer.original_queue_ms == 20
        assert len(translator.frames) == 1 and int(translator.frames[0].max()) > 7000
        assert rx.stats.frames_in == 2
        nursery.cancel_scope.cancel()


async def test_a_mark_echo_goes_to_this_partys_own_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, leg = receiver(trio.Event())
    probe = rx._own.probe
    name = None
    for _ in range(25):
        name = probe.after_frame(trio.current_time()) or name
    assert name is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.run)
        await trio.sleep(0.05)
        await leg.socket_in.send(mark_message(name))
        await trio.testing.wait_all_tasks_blocked()
        assert probe.last_delay_s == pytest.approx(0.05)
        nursery.cancel_scope.cancel()


async def test_invalid_messages_are_counted_and_each_reason_logged_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, leg = receiver(trio.Event())
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rx.run)
            for bad in ("{not json", "{not json either", b"\x00binary", "[]"):
                await leg.socket_in.send(bad)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert rx.stats.invalid == {"bad_json": 2, "binary_frame": 1, "not_object": 1}
    logged = [e["reason"] for e in logs if e["event"] == "media_invalid"]
    assert sorted(logged) == ["bad_json", "binary_frame", "not_object"]


async def test_stop_is_a_hangup_of_this_party(autojump_clock: trio.testing.MockClock) -> None:
    rx, leg = receiver(trio.Event())
    await leg.socket_in.send(stop_message())
    assert (await run_until_ended(rx)).reason is EndReason.CALLER_HANGUP


async def test_the_socket_closing_is_a_hangup_of_this_party(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, leg = receiver(trio.Event())
    leg.socket_in.close()
    assert (await run_until_ended(rx)).reason is EndReason.CALLER_HANGUP


async def test_nothing_valid_for_the_idle_timeout_ends_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, leg = receiver(trio.Event(), idle_s=3.0)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def garbage() -> None:
            while True:
                await leg.socket_in.send("{garbage")
                await trio.sleep(0.5)

        nursery.start_soon(garbage)
        ended = await run_until_ended(rx)
        nursery.cancel_scope.cancel()
    assert ended.reason is EndReason.LEG_TIMEOUT
    assert trio.current_time() - start == pytest.approx(3.0)
