"""Cost of cluster mode's shared state, through callbridge's own adapters (prints, asserts nothing).

    python -m benchmarks.cluster --redis-url redis://127.0.0.1:6379/0 \\
        --database-url postgresql://callbridge@127.0.0.1:5432/callbridge

- admission: one ``RedisAdmission.reserve`` + ``release`` (two Lua/ZREM round trips through a
  worker thread), sequential, then 50 trio tasks at once;
- feeds: ``publish`` on one ``StreamFeeds`` until a page subscribed on a second one receives it;
- store: 5,000 utterance upserts queued at once on the PostgreSQL writer, until ``flush``.

Bounded: a few thousand operations each, under a keys prefix of its own (removed at the end) and,
for the store, rows under call ids it deletes afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

import orjson
import trio

from callbridge.cluster.admission import RedisAdmission
from callbridge.cluster.redis_client import open_redis
from callbridge.cluster.streams import StreamFeeds
from callbridge.config import ClusterConfig, Config
from callbridge.transcripts.store import TranscriptStore


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms"


async def bench_admission(config: Config, prefix: str) -> None:
    async with open_redis(config) as redis:
        admission = RedisAdmission(
            redis, key=f"{prefix}:admission", instance_id="bench", max_calls=10_000, ttl_s=60
        )
        samples = []
        for i in range(1000):
            started = time.perf_counter()
            await admission.reserve(f"c{i}")
            await admission.release(f"c{i}")
            samples.append(time.perf_counter() - started)
        print(f"admission reserve+release, sequential (1000):   {_ms(samples)}")
        samples = []

        async def worker(w: int) -> None:
            for i in range(40):
                started = time.perf_counter()
                await admission.reserve(f"w{w}-{i}")
                await admission.release(f"w{w}-{i}")
                samples.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for w in range(50):
                nursery.start_soon(worker, w)
        rate = len(samples) / (time.perf_counter() - started)
        print(f"admission reserve+release, 50 tasks (2000):     {_ms(samples)}   {rate:,.0f}/s")


async def bench_feeds(config: Config, prefix: str) -> None:
    async with (
        open_redis(config) as r1,
        open_redis(config) as r2,
        trio.open_nursery() as nursery,
    ):
        kw = {"prefix": prefix, "replay_events": 2000, "subscriber_queue": 1000}
        a, b = StreamFeeds(r1, **kw), StreamFeeds(r2, **kw)  # type: ignore[arg-type]
        await nursery.start(a.run)
        await nursery.start(b.run)
        samples = []
        async with b.subscribe("call:bench", None) as page:
            for i in range(500):
                started = time.perf_counter()
                a.publish(("call:bench",), orjson.dumps({"n": i}))
                await page.receive.receive()
                samples.append(time.perf_counter() - started)
        print(f"feed publish -> page on another instance (500): {_ms(samples)}")
        nursery.cancel_scope.cancel()


async def bench_store(database_url: str) -> None:
    store = TranscriptStore.postgres(database_url, owner="bench")
    await trio.to_thread.run_sync(store.start)
    call_id = f"bench-{secrets.token_hex(4)}"
    try:
        started = time.perf_counter()
        for i in range(5000):
            store.save_utterance(
                {
                    "call_id": call_id,
                    "utterance_id": f"u{i}",
                    "direction": "caller_to_operator",
                    "speaker": "caller",
                    "first_seen_at": time.time(),
                    "source_text": "x" * 120,
                }
            )
        await store.flush()
        elapsed = time.perf_counter() - started
        print(f"PostgreSQL store, 5000 upserts queued -> flushed: {elapsed:.2f} s "
              f"({5000 / elapsed:,.0f} rows/s)")  # fmt: skip
    finally:
        store.prune(0, now=time.time() + 1)  # removes the bench rows (no call row: orphans)
        await store.close()


async def main(redis_url: str, database_url: str | None) -> None:
    prefix = f"bench{secrets.token_hex(3)}"
    config = Config(cluster=ClusterConfig(redis_url=redis_url, key_prefix=prefix))
    await bench_admission(config, prefix)
    await bench_feeds(config, prefix)
    async with open_redis(config) as redis:
        keys = await redis.run(lambda c: c.keys(f"{prefix}:*"))
        if keys:
            await redis.run(lambda c: c.delete(*keys))
    if database_url:
        await bench_store(database_url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    trio.run(main, args.redis_url, args.database_url)
