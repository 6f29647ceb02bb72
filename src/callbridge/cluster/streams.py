"""``StreamFeeds``: live transcript feeds over Redis Streams, so any instance's pages see every call.

Each feed topic is a stream: ``{prefix}:feed:call:{id}`` per call, ``{prefix}:feed:calls`` for the
all-calls list. An entry's id (``<ms>-<n>``, https://redis.io/commands/xadd/) is the SSE event id,
so a page that reconnects to *any* instance resumes with ``XRANGE (<last id> +``.

- **Publishing** (``publish``) never blocks: items go into a bounded memory channel that one task
  drains, writing each batch with one pipelined ``XADD … MAXLEN ~ replay_events`` per topic plus a
  ``PEXPIRE`` (call streams vanish an hour after their last event). A full channel drops the item
  (counted, logged).
- **Reading**: one task per instance issues one ``XREAD BLOCK`` over every stream a local page
  watches, on a connection of its own, and fans entries out to per-page channels with
  ``send_nowait`` (a page that falls ``subscriber_queue`` behind is dropped; it reconnects). Every
  stream is read from a concrete id, never ``$``, which would lose entries added between two reads.
  A newly watched stream interrupts the blocked read with ``CLIENT UNBLOCK``
  (https://redis.io/docs/latest/commands/client-unblock/), and so does cancellation.
- **Resume**: ``XINFO STREAM`` (Redis 7: ``entries-added`` against ``length``, the first entry,
  ``max-deleted-entry-id``) tells whether entries after the page's id may have been trimmed: then,
  or when the id is unknown or more than ``replay_events`` behind, the page gets a snapshot
  instead, never a replay with a hole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final

import attrs
import redis
import trio

from callbridge.cluster.redis_client import RedisAdapter
from callbridge.cluster.stream_entries import (
    FIELD,
    StreamId,
    StreamState,
    client_unblock,
    feed_item,
    fmt_stream_id,
    parse_stream_id,
    stream_state,
)
from callbridge.log import get_logger
from callbridge.transcripts.broadcaster import ALL_CALLS, FeedItem
from callbridge.transcripts.feeds import FeedSubscription

__all__ = ["StreamFeeds", "StreamStats", "parse_stream_id"]

log = get_logger("callbridge.cluster.streams")

# A blocked read returns at least this often (ms), so a watch added in the instant between two
# reads waits at most this long.
_BLOCK_MS: Final = 1000
_READ_COUNT: Final = 500
# A snapshot is read from the shared store, which the owning instance writes a few ms after it
# publishes; the events of this window (ms) before the snapshot are sent after it as well.
_SNAPSHOT_MARGIN_MS: Final = 2000
_PUBLISH_QUEUE: Final = 10_000
_PUBLISH_BATCH: Final = 500
_CALL_STREAM_TTL_MS: Final = 3_600_000
_ALL_STREAM_TTL_MS: Final = 86_400_000
_RETRY_S: Final = 1.0
# CLIENT UNBLOCK attempts, 10 ms apart, for an XREAD still on its way to the server.
_UNBLOCK_TRIES: Final = 50


@attrs.define
class StreamStats:
    published: int = 0
    publish_dropped: int = 0
    publish_failed: int = 0
    delivered: int = 0
    dropped_subscribers: int = 0
    read_errors: int = 0


@attrs.define(eq=False)
class _Sub:
    key: str
    send: trio.MemorySendChannel[FeedItem]
    # Entries at or below this id were already handed over (replay or tail): not sent again.
    floor: StreamId


class StreamFeeds:
    """A ``transcripts.feeds.FeedSource`` on Redis Streams; run ``run()`` in a nursery."""

    def __init__(
        self,
        redis: RedisAdapter,
        *,
        prefix: str,
        replay_events: int,
        subscriber_queue: int,
        block_ms: int = _BLOCK_MS,
    ) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._prefix = prefix
        self._replay_events = replay_events
        self._subscriber_queue = subscriber_queue
        self.stats = StreamStats()
        self._out_send, self._out_receive = trio.open_memory_channel[tuple[tuple[str, ...], bytes]](
            _PUBLISH_QUEUE
        )
        self._positions: dict[str, str] = {}
        self._subs: dict[str, set[_Sub]] = {}
        self._changed = trio.Event()
        self._reader_limiter = trio.CapacityLimiter(1)
        self._reader_id: int | None = None
        # True while the reader thread is inside XREAD (set and read across threads: a bool).
        self._reading = False
        self._closed = False

    def key(self, topic: str) -> str:
        return (
            f"{self._prefix}:feed:calls" if topic == ALL_CALLS else f"{self._prefix}:feed:{topic}"
        )

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, topics: tuple[str, ...], payload: bytes) -> None:
        try:
            self._out_send.send_nowait((tuple(self.key(t) for t in topics), payload))
        except trio.WouldBlock:
            self.stats.publish_dropped += 1
            if self.stats.publish_dropped % 100 == 1:
                log.error("feed_publish_dropped", dropped=self.stats.publish_dropped)
        except trio.ClosedResourceError:
            self.stats.publish_dropped += 1

    async def _publish_forever(self) -> None:
        try:
            while True:
                batch = [await self._out_receive.receive()]
                await self._write(self._take(batch))
        finally:
            # Shutdown: what was queued (the calls' last status events) still goes out, briefly.
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                leftover = self._take([])
                if leftover:
                    await self._write(leftover)

    def _take(self, batch: list[tuple[tuple[str, ...], bytes]]) -> list[Any]:
        while len(batch) < _PUBLISH_BATCH:
            try:
                batch.append(self._out_receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def _write(self, batch: list[tuple[tuple[str, ...], bytes]]) -> None:
        def write(client: Any) -> None:
            with client.pipeline(transaction=False) as pipe:
                for keys, payload in batch:
                    for key in keys:
                        ttl = (
                            _ALL_STREAM_TTL_MS
                            if key.endswith(":feed:calls")
                            else _CALL_STREAM_TTL_MS
                        )
                        pipe.xadd(
                            key, {FIELD: payload}, maxlen=self._replay_events, approximate=True
                        )
                        pipe.pexpire(key, ttl)
                pipe.execute()

        try:
            await self._redis.run(write)
        except redis.RedisError as exc:
            self.stats.publish_failed += len(batch)
            log.error("feed_publish_failed", error=repr(exc), events=len(batch))
        else:
            self.stats.published += len(batch)

    # --- reading ---------------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        client = self._redis.dedicated_client()
        try:
            while True:
                if not self._positions:
                    self._changed = trio.Event()
                    await self._changed.wait()
                    continue
                try:
                    reply = await self._xread(client, dict(self._positions))
                except redis.RedisError as exc:
                    self.stats.read_errors += 1
                    self._reader_id = None
                    log.error("feed_read_failed", error=repr(exc), retry_s=_RETRY_S)
                    await trio.sleep(_RETRY_S)
                    continue
                self._deliver(reply or [])
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5.0):
                # The reader's own limiter: waits for an abandoned XREAD to come back first.
                await trio.to_thread.run_sync(client.close, limiter=self._reader_limiter)

    async def _xread(self, client: Any, streams: dict[str, str]) -> Any:
        def read() -> Any:
            try:
                if self._reader_id is None:
                    self._reader_id = int(client.client_id())
                return client.xread(streams, count=_READ_COUNT, block=self._block_ms)
            finally:
                self._reading = False

        # Set before the thread starts, cleared by it when XREAD returns: "_unblock" keeps trying
        # for as long as a read may still be on its way to blocking.
        self._reading = True

        try:
            return await trio.to_thread.run_sync(
                read, limiter=self._reader_limiter, abandon_on_cancel=True
            )
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(5.0):
                await self._unblock()
            raise

    async def _unblock(self) -> None:
        """End the reader's blocked XREAD now (it returns as if timed out). An XREAD sent but not
        yet blocking on the server answers 0 to CLIENT UNBLOCK: try again while it is in flight."""
        for _ in range(_UNBLOCK_TRIES):
            reader_id = self._reader_id
            if not self._reading:
                return
            if reader_id is None:  # the thread is still asking for its client id
                await trio.sleep(0.01)
                continue
            try:
                if await self._redis.run(partial(client_unblock, client_id=reader_id)):
                    return
            except redis.RedisError as exc:
                log.warning("feed_unblock_failed", error=repr(exc))
                return
            await trio.sleep(0.01)

    def _deliver(self, reply: list[Any]) -> None:
        for key, entries in reply:
            if not entries:
                continue
            if key in self._positions:
                self._positions[key] = entries[-1][0]
            subs = self._subs.get(key, set())
            for entry_id, fields in entries:
                stream_id = parse_stream_id(entry_id)
                item = feed_item(entry_id, fields)
                if stream_id is None or item is None:
                    continue
                for sub in tuple(subs):
                    if stream_id > sub.floor:
                        self._send(sub, item)

    def _send(self, sub: _Sub, item: FeedItem) -> None:
        try:
            sub.send.send_nowait(item)
        except trio.WouldBlock:
            self.stats.dropped_subscribers += 1
            log.warning("feed_subscriber_dropped", key=sub.key, reason="too_slow")
            self._unwatch(sub)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._unwatch(sub)
        else:
            self.stats.delivered += 1

    def _unwatch(self, sub: _Sub) -> None:
        sub.send.close()
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
                self._positions.pop(sub.key, None)

    # --- subscribing -----------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self, topic: str, last_event_id: str | None
    ) -> AsyncIterator[FeedSubscription]:
        """See ``FeedSource.subscribe``. Raises ``redis.RedisError`` when Redis is away."""
        key = self.key(topic)
        send, receive = trio.open_memory_channel[FeedItem](self._subscriber_queue)
        with send, receive:
            if self._closed:
                send.close()
                yield FeedSubscription(replay=[], snapshot_id="0-0", receive=receive)
                return
            state = await self._redis.run(lambda c: stream_state(c, key))
            head = state.last if state is not None else (0, 0)
            sub = _Sub(key, send, floor=head)
            self._subs.setdefault(key, set()).add(sub)
            try:
                if key not in self._positions:
                    self._positions[key] = fmt_stream_id(head)
                    self._changed.set()
                    await self._unblock()
                yield await self._catch_up(sub, state, parse_stream_id(last_event_id), receive)
            finally:
                self._unwatch(sub)

    async def _catch_up(
        self,
        sub: _Sub,
        state: StreamState | None,
        resume: StreamId | None,
        receive: trio.MemoryReceiveChannel[FeedItem],
    ) -> FeedSubscription:
        replay = None
        if resume is not None and state is not None and state.deleted_upto <= resume <= state.last:
            items = await self._range(sub.key, f"({fmt_stream_id(resume)}", self._replay_events + 1)
            if len(items) <= self._replay_events:
                replay = items
        start = (max((state.last if state else (0, 0))[0] - _SNAPSHOT_MARGIN_MS, 0), 0)
        tail = [] if replay is not None else await self._range(sub.key, fmt_stream_id(start), None)
        handed = replay if replay is not None else tail
        if handed:
            sub.floor = max(sub.floor, parse_stream_id(handed[-1].event_id) or (0, 0))
        # Live entries that reached the channel while the range was read: drop those the range
        # already holds, keep the rest after it, so the page gets each entry once, in order.
        while True:
            try:
                early = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if (parse_stream_id(early.event_id) or (0, 0)) > sub.floor:
                handed.append(early)
        return FeedSubscription(
            replay=replay, snapshot_id=fmt_stream_id(start), receive=receive, tail=tail
        )

    async def _range(self, key: str, start: str, count: int | None) -> list[FeedItem]:
        """Entries after ``start`` (``(id`` exclusive); the newest ``replay_events`` when
        ``count`` is None."""

        def read(client: Any) -> list[Any]:
            if count is None:
                return list(reversed(client.xrevrange(key, "+", start, count=self._replay_events)))
            return list(client.xrange(key, start, "+", count=count))

        entries = await self._redis.run(read)
        return [item for entry_id, fields in entries if (item := feed_item(entry_id, fields))]

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The publisher and the reader, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._publish_forever)
            nursery.start_soon(self._read_forever)
            task_status.started()

    def close(self) -> None:
        """End every subscription, and every one made from now on (shutdown)."""
        self._closed = True
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                self._unwatch(sub)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())
