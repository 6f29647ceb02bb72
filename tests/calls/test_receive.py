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
from callbridge.telephony.media_stream import MAX_MESSAGE_CHARS
from tests.calls.fakes import twilio_side
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
) -> tuple[LegReceiver, trio.MemorySendChannel[str | bytes]]:
    socket_in, inbound = twilio_side()
    leg = MediaLeg.open(Role.CALLER, inbound)
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
        socket_in,
    )


async def run_until_ended(receiver: LegReceiver) -> CallEnded:
    with pytest.raises(CallEnded) as caught:
        await receiver.run()
    return caught.value


async def test_media_reaches_the_other_party_and_the_translator_only_once_bridged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bridged, translator = trio.Event(), RecordingInput()
    rx, socket_in = receiver(bridged, translator)
    other = rx._other
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.run)
        await socket_in.send(media_message(tone(), 1))
        await trio.testing.wait_all_tasks_blocked()
        assert (other.mixer.original_queue_ms, len(translator.frames)) == (0, 0)
        bridged.set()
        await socket_in.send(media_message(tone(), 2))
        await trio.testing.wait_all_tasks_blocked()
        assert other.mixer.original_queue_ms == 20
        assert len(translator.frames) == 1 and int(translator.frames[0].max()) > 7000
        assert rx.stats.frames_in == 2
        nursery.cancel_scope.cancel()


async def test_a_mark_echo_goes_to_this_partys_own_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, socket_in = receiver(trio.Event())
    probe = rx._own.probe
    name = None
    for _ in range(25):
        name = probe.after_frame(trio.current_time()) or name
    assert name is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.run)
        await trio.sleep(0.05)
        await socket_in.send(mark_message(name))
        await trio.testing.wait_all_tasks_blocked()
        assert probe.last_delay_s == pytest.approx(0.05)
        nursery.cancel_scope.cancel()


async def test_invalid_messages_are_counted_and_each_reason_logged_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, socket_in = receiver(trio.Event())
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rx.run)
            for bad in ("{not json", "{not json either", b"\x00binary", "[]"):
                await socket_in.send(bad)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert rx.stats.invalid == {"bad_json": 2, "binary_frame": 1, "not_object": 1}
    logged = [e["reason"] for e in logs if e["event"] == "media_invalid"]
    assert sorted(logged) == ["bad_json", "binary_frame", "not_object"]


async def test_stop_is_a_hangup_of_this_party(autojump_clock: trio.testing.MockClock) -> None:
    rx, socket_in = receiver(trio.Event())
    await socket_in.send(stop_message())
    assert (await run_until_ended(rx)).reason is EndReason.CALLER_HANGUP


async def test_a_socket_ending_without_stop_is_a_lost_leg_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Twilio says ``stop`` before it closes a stream: a socket that just ends broke."""
    rx, socket_in = receiver(trio.Event())
    socket_in.close()
    start = trio.current_time()
    assert (await run_until_ended(rx)).reason is EndReason.MEDIA_LOST
    assert trio.current_time() == start


async def test_a_message_far_larger_than_twilios_ends_the_call_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, socket_in = receiver(trio.Event())
    await socket_in.send('{"event": "media", "pad": "' + "x" * MAX_MESSAGE_CHARS + '"}')
    ended = await run_until_ended(rx)
    assert ended.reason is EndReason.MEDIA_TOO_LARGE
    assert rx._leg.outbound._closed  # the socket's writer stops: the handler closes it


async def test_nothing_valid_for_the_idle_timeout_ends_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rx, socket_in = receiver(trio.Event(), idle_s=3.0)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def garbage() -> None:
            while True:
                await socket_in.send("{garbage")
                await trio.sleep(0.5)

        nursery.start_soon(garbage)
        ended = await run_until_ended(rx)
        nursery.cancel_scope.cancel()
    assert ended.reason is EndReason.LEG_TIMEOUT
    assert trio.current_time() - start == pytest.approx(3.0)
