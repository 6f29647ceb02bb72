"""Broadcaster: bounded fan-out, slow subscribers dropped, replay from the last event id."""

from __future__ import annotations

import trio

from callbridge.transcripts.broadcaster import Broadcaster, FeedItem


def publish(bc: Broadcaster, *topics: str) -> FeedItem:
    item = FeedItem(bc.next_seq(), b"{}")
    bc.publish(topics, item)
    return item


class TestFanOut:
    async def test_every_subscriber_of_a_topic_gets_each_item(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        with bc.subscribe("a") as one, bc.subscribe("a") as two, bc.subscribe("b") as other:
            item = publish(bc, "a")
            assert one.receive.receive_nowait() == item
            assert two.receive.receive_nowait() == item
            assert other.receive.statistics().current_buffer_used == 0

    async def test_a_slow_subscriber_is_dropped_and_others_are_not_touched(self) -> None:
        bc = Broadcaster(replay_events=100, subscriber_queue=2)
        with bc.subscribe("a") as slow, bc.subscribe("a") as fast:
            received = []
            for _ in range(5):
                received.append(publish(bc, "a"))
                received_fast = fast.receive.receive_nowait()
                assert received_fast == received[-1]
            # The slow one got what fitted, then its channel was closed: its page reconnects.
            assert [slow.receive.receive_nowait() for _ in range(2)] == received[:2]
            try:
                slow.receive.receive_nowait()
            except trio.EndOfChannel:
                pass
            else:
                raise AssertionError("a dropped subscriber's channel must end")
            assert bc.subscriber_count("a") == 1
            assert bc.stats.dropped_subscribers == 1

    async def test_leaving_the_context_unsubscribes(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        with bc.subscribe("a"):
            assert bc.subscriber_count() == 1
        assert bc.subscriber_count() == 0
        publish(bc, "a")  # nobody to deliver to: fine

    async def test_close_ends_every_subscription(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        with bc.subscribe("a") as sub:
            bc.close()
            with trio.fail_after(1):
                async for _ in sub.receive:
                    raise AssertionError("nothing was published")

    async def test_a_subscription_made_after_close_ends_at_once(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        bc.close()
        with bc.subscribe("a") as sub:
            assert bc.subscriber_count() == 0
            publish(bc, "a")
            with trio.fail_after(1):
                async for _ in sub.receive:
                    raise AssertionError("a closed broadcaster delivered")


class TestReplay:
    async def test_resume_returns_exactly_the_missed_items_of_the_topic(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        with bc.subscribe("a"):
            first = publish(bc, "a")
            publish(bc, "b")
            missed = [publish(bc, "a"), publish(bc, "a", "b")]
        assert bc.replay_since("a", first.seq) == missed
        assert bc.replay_since("a", bc.seq) == []

    async def test_ids_from_another_process_or_garbage_do_not_resume(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        item = publish(bc, "a")
        assert bc.parse_feed_id(bc.feed_id(item.seq)) == item.seq
        for bad in (None, "", "other-1", f"{bc.boot}-x", f"{bc.boot}"):
            assert bc.parse_feed_id(bad) is None
        assert bc.replay_since("a", None) is None
        assert bc.replay_since("a", bc.seq + 5) is None

    async def test_an_id_older_than_the_ring_cannot_resume(self) -> None:
        bc = Broadcaster(replay_events=3, subscriber_queue=4)
        first = publish(bc, "a")
        later = [publish(bc, "a") for _ in range(4)]
        assert bc.replay_since("a", first.seq) is None  # later[0] fell off the ring
        assert bc.replay_since("a", later[0].seq) == later[1:]

    async def test_a_forgotten_topic_cannot_resume(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        first = publish(bc, "a")
        publish(bc, "a")
        bc.forget("a")
        publish(bc, "a")
        assert bc.replay_since("a", first.seq) is None


class TestRingBounds:
    async def test_a_ring_for_a_made_up_call_id_goes_with_its_last_subscriber(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=4)
        for i in range(1000):
            with bc.subscribe(f"call:nonexistent{i}"):
                pass
        assert bc.ring_count() == 0

    async def test_rings_are_capped_least_recently_used_first_idle_before_watched(self) -> None:
        bc = Broadcaster(replay_events=10, subscriber_queue=100, max_rings=3)
        with bc.subscribe("watched") as sub:
            publish(bc, "watched")
            first = publish(bc, "a")
            publish(bc, "b")
            publish(bc, "c")  # over the cap: "a" (idle, oldest) goes, not "watched"
            assert bc.ring_count() == 3
            assert bc.stats.evicted_rings == 1
            assert bc.replay_since("a", first.seq - 1) is None  # evicted: snapshot, not a hole
            assert bc.replay_since("watched", sub.start_seq) is not None
            for i in range(50):
                publish(bc, f"x{i}")
            assert bc.ring_count() == 3
