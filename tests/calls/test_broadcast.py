"""CallBroadcaster: the call's one bounded path to the hub, in order, never blocking the audio."""

from __future__ import annotations

import trio
import trio.testing

from callbridge.calls.broadcast import BROADCAST_QUEUE, CallBroadcaster
from callbridge.records import CallRecord
from callbridge.roles import Direction
from callbridge.transcripts.events import TranscriptEvent
from tests.calls.fakes import FakeSink


def played(uid: str) -> TranscriptEvent:
    return TranscriptEvent.played("call-1", Direction.CALLER_TO_OPERATOR, uid, 1.0)


def record(status: str = "ringing") -> CallRecord:
    rec = CallRecord("call-1", "CA1", "+1555", "en", "es")
    rec.status = status  # type: ignore[assignment]
    return rec


async def test_events_and_records_reach_the_hub_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FakeSink()
    broadcaster = CallBroadcaster(sink)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(broadcaster.run)
        broadcaster.call_updated(record("ringing"))
        broadcaster.publish(played("u1"))
        await trio.testing.wait_all_tasks_blocked()
        assert [r["status"] for r in sink.records] == ["ringing"]
        assert [e.utterance_id for e in sink.events] == ["u1"]
        nursery.cancel_scope.cancel()


async def test_a_record_is_copied_when_queued_not_when_delivered() -> None:
    sink = FakeSink()
    broadcaster = CallBroadcaster(sink)
    rec = record("ringing")
    broadcaster.call_updated(rec)
    rec.status = "connected"
    broadcaster.close(rec)
    assert [r["status"] for r in sink.records] == ["ringing", "connected"]


async def test_a_full_queue_drops_events_and_counts_them_but_keeps_every_record() -> None:
    sink = FakeSink()
    broadcaster = CallBroadcaster(sink)
    for n in range(BROADCAST_QUEUE + 5):
        broadcaster.publish(played(f"u{n}"))
    broadcaster.call_updated(record("connected"))
    assert broadcaster.dropped == 5
    broadcaster.close(record("ended"))
    assert len(sink.events) == BROADCAST_QUEUE
    assert [r["status"] for r in sink.records] == ["connected", "ended"]


async def test_close_delivers_what_is_queued_before_the_final_record() -> None:
    sink = FakeSink()
    broadcaster = CallBroadcaster(sink)
    broadcaster.publish(played("last"))
    broadcaster.close(record("ended"))
    assert [e.utterance_id for e in sink.events] == ["last"]
    assert sink.records[-1]["status"] == "ended"
    broadcaster.publish(played("late"))  # after close: dropped, not raised
    assert broadcaster.dropped == 1
