"""Live feeds on Redis Streams: fan-out across instances, resume by entry id, no silent holes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import trio

from callbridge.cluster.streams import StreamFeeds, parse_stream_id
from callbridge.transcripts.broadcaster import FeedItem

from .helpers import adapter


@asynccontextmanager
async def running_feeds(
    redis_url: str, prefix: str, instance: str, **kwargs: int
) -> AsyncIterator[StreamFeeds]:
    settings = {"replay_events": 100, "subscriber_queue": 64, **kwargs}
    async with adapter(redis_url, prefix, instance) as r, trio.open_nursery() as nursery:
        feeds = StreamFeeds(r, prefix=prefix, **settings)
        await nursery.start(feeds.run)
        yield feeds
        feeds.close()
        nursery.cancel_scope.cancel()


def payload(n: int) -> bytes:
    return orjson.dumps({"type": "event", "n": n})


def numbers(items: list[FeedItem]) -> list[int]:
    return [orjson.loads(item.payload)["n"] for item in items]


async def receive(channel: trio.MemoryReceiveChannel[FeedItem], count: int) -> list[FeedItem]:
    return [await channel.receive() for _ in range(count)]


async def test_an_event_published_on_one_instance_reaches_pages_on_another(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with (
            running_feeds(redis_server, redis_prefix, "a") as a,
            running_feeds(redis_server, redis_prefix, "b") as b,
            b.subscribe("call:x", None) as sub,
            b.subscribe("*", None) as everything,
        ):
            assert sub.replay is None and sub.tail == []  # a new page: snapshot first
            for n in range(3):
                a.publish(("call:x", "*") if n == 0 else ("call:x",), payload(n))
            got = await receive(sub.receive, 3)
            [listed] = await receive(everything.receive, 1)
        assert numbers(got) == [0, 1, 2]
        assert numbers([listed]) == [0]
        ids = [parse_stream_id(item.event_id) for item in got]
        assert all(ids) and ids == sorted(ids)  # type: ignore[type-var]


async def test_a_page_resumes_on_any_instance_with_exactly_what_it_missed(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with (
            running_feeds(redis_server, redis_prefix, "a") as a,
            running_feeds(redis_server, redis_prefix, "b") as b,
        ):
            async with b.subscribe("call:x", None) as first:
                a.publish(("call:x",), payload(1))
                [seen] = await receive(first.receive, 1)
            for n in (2, 3):
                a.publish(("call:x",), payload(n))
            # The page reconnects through the load balancer and lands on instance a this time.
            while True:
                async with a.subscribe("call:x", seen.event_id) as again:
                    assert again.replay is not None
                    if len(again.replay) == 2:
                        a.publish(("call:x",), payload(4))
                        [live] = await receive(again.receive, 1)
                        break
                await trio.sleep(0.01)  # 2 and 3 still on their way to Redis
        assert numbers(again.replay) == [2, 3]
        assert numbers([live]) == [4]


async def test_resume_from_a_trimmed_or_too_old_id_gets_a_snapshot(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with (
            running_feeds(
                redis_server, redis_prefix, "a", replay_events=20, subscriber_queue=1000
            ) as a,
            a.subscribe("call:x", None) as watcher,
        ):
            a.publish(("call:x",), payload(0))
            [oldest] = await receive(watcher.receive, 1)
            for n in range(1, 30):
                a.publish(("call:x",), payload(n))
            got = await receive(watcher.receive, 29)
            # 29 entries after it, more than replay_events: a snapshot, not a partial replay.
            async with a.subscribe("call:x", oldest.event_id) as behind:
                assert behind.replay is None
                assert numbers(behind.tail)[-1] == 29
            async with a.subscribe("call:x", got[-10].event_id) as close:
                assert close.replay is not None and numbers(close.replay) == list(range(21, 30))
            # Trimmed below the page's id (as MAXLEN does on a busy call): 5 entries are left,
            # fewer than replay_events, but the ones right after the page's id are gone.
            key = a.key("call:x")
            await a._redis.run(lambda c: c.xtrim(key, maxlen=5, approximate=False))
            async with a.subscribe("call:x", got[10].event_id) as trimmed:
                assert trimmed.replay is None
            async with a.subscribe("call:x", "not-an-id") as garbage:
                assert garbage.replay is None


async def test_a_slow_page_is_dropped_and_publishing_never_waits(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with (
            running_feeds(redis_server, redis_prefix, "a", subscriber_queue=4) as a,
            a.subscribe("call:x", None) as slow,
        ):
            for n in range(20):
                a.publish(("call:x",), payload(n))
            while a.stats.dropped_subscribers == 0:  # the page reads nothing meanwhile
                await trio.sleep(0.01)
            got = [item async for item in slow.receive]  # ends: the page was dropped
        assert numbers(got) == [0, 1, 2, 3]
        assert a.stats.dropped_subscribers == 1


async def test_a_new_watch_and_cancellation_interrupt_a_long_blocked_read(
    redis_server: str, redis_prefix: str
) -> None:
    """With XREAD BLOCK at 30 s, only CLIENT UNBLOCK makes these prompt."""
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            async with trio.open_nursery() as nursery:
                feeds = StreamFeeds(
                    r, prefix=redis_prefix, replay_events=10, subscriber_queue=8, block_ms=30_000
                )
                await nursery.start(feeds.run)
                async with feeds.subscribe("call:one", None):
                    await trio.sleep(0.2)  # the reader is now blocked on call:one alone
                    async with feeds.subscribe("call:two", None) as two:
                        started = trio.current_time()
                        feeds.publish(("call:two",), payload(1))
                        await two.receive.receive()
                        assert trio.current_time() - started < 2
                started = trio.current_time()
                nursery.cancel_scope.cancel()
            assert trio.current_time() - started < 2
            clients = await r.run(lambda c: c.client_list())
        assert not [c for c in clients if c.get("cmd") == "xread"]
