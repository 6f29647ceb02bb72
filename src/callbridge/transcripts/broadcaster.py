"""``Broadcaster``: fan-out of feed items to page subscribers, with a replay ring per topic.

Every item gets the next sequence number of this broadcaster; its feed id is ``"{boot}-{seq}"``
where ``boot`` is random per process. A page that reconnects with its last id gets what it missed
from the topic's ring; when it cannot (another process, or the ring has moved past its id) the
caller sends a fresh snapshot instead, so a reconnect never silently skips events.

Each subscriber has one bounded channel, filled with ``send_nowait``: a subscriber that falls
``subscriber_queue`` items behind is dropped (its channel closed) rather than ever making the
publisher wait, so a slow browser cannot touch the audio path or other pages. The dropped page
reconnects and resumes from its last id.

Memory is bounded: each ring holds at most ``replay_events`` items, and at most ``max_rings`` rings
exist. A page can subscribe to any well-formed call id, so rings are evicted: an empty ring goes
with its last subscriber, and past ``max_rings`` the least recently used ring goes (one without
subscribers first). A page whose ring was evicted gets a snapshot on its next reconnect, never a
replay with a hole.

Resource handling: ``subscribe`` returns a context manager; leaving it unregisters synchronously.
``close()`` ends every subscription (their ``async for`` loops finish).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import attrs
import trio

from callbridge.log import get_logger

__all__ = ["ALL_CALLS", "MAX_RINGS", "Broadcaster", "FeedItem", "Subscription", "call_topic"]

log = get_logger("callbridge.transcripts.broadcaster")

# The topic of the all-calls feed.
ALL_CALLS: Final = "*"
# Replay rings kept by default (live calls, recently ended ones, the all-calls feed).
MAX_RINGS: Final = 256


def call_topic(call_id: str) -> str:
    return f"call:{call_id}"


@attrs.frozen
class FeedItem:
    """One encoded feed message; ``payload`` is JSON ready to send. ``event_id``: the feed id
    when it is not ``{boot}-{seq}`` (a Redis stream entry id in cluster mode)."""

    seq: int
    payload: bytes
    event_id: str | None = None


@attrs.define(eq=False)
class Subscription:
    topic: str
    receive: trio.MemoryReceiveChannel[FeedItem]
    _send: trio.MemorySendChannel[FeedItem]
    # Sequence number current when the subscription started: the snapshot point.
    start_seq: int


@attrs.define
class _Ring:
    """A topic's recent items; ``evicted_upto`` is the newest seq that fell off the front."""

    items: deque[FeedItem]
    evicted_upto: int = 0

    def append(self, item: FeedItem) -> None:
        if len(self.items) == self.items.maxlen:
            self.evicted_upto = self.items[0].seq
        self.items.append(item)


@attrs.define
class BroadcastStats:
    published: int = 0
    delivered: int = 0
    dropped_subscribers: int = 0
    evicted_rings: int = 0


@attrs.define
class Broadcaster:
    replay_events: int
    subscriber_queue: int
    max_rings: int = MAX_RINGS
    boot: str = attrs.Factory(lambda: secrets.token_hex(4))
    stats: BroadcastStats = attrs.Factory(BroadcastStats)
    _seq: int = 0
    # Least recently used first.
    _rings: OrderedDict[str, _Ring] = attrs.Factory(OrderedDict)
    _subscribers: dict[str, set[Subscription]] = attrs.Factory(dict)
    _closed: bool = False

    @property
    def seq(self) -> int:
        return self._seq

    def feed_id(self, seq: int) -> str:
        return f"{self.boot}-{seq}"

    def parse_feed_id(self, feed_id: str | None) -> int | None:
        """The sequence number in ``feed_id`` if it was issued by this broadcaster, else None."""
        if not feed_id:
            return None
        boot, _, seq = feed_id.rpartition("-")
        if boot != self.boot or not seq.isdigit():
            return None
        return int(seq)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def publish(self, topics: tuple[str, ...], item: FeedItem) -> None:
        """Record ``item`` in each topic's ring and hand it to each subscriber; never blocks."""
        self.stats.published += 1
        for topic in topics:
            self._ring(topic, item.seq - 1).append(item)
            for sub in tuple(self._subscribers.get(topic, ())):
                self._deliver(sub, item)

    def _ring(self, topic: str, known_from: int) -> _Ring:
        # A new ring knows nothing before ``known_from``: a page claiming an older id gets a
        # snapshot instead of a replay that might have a hole.
        ring = self._rings.get(topic)
        if ring is None:
            ring = self._rings[topic] = _Ring(deque(maxlen=self.replay_events), known_from)
            self._evict_rings()
        else:
            self._rings.move_to_end(topic)
        return ring

    def _evict_rings(self) -> None:
        while len(self._rings) > self.max_rings:
            idle = next((t for t in self._rings if t not in self._subscribers), None)
            topic = idle if idle is not None else next(iter(self._rings))
            del self._rings[topic]
            self.stats.evicted_rings += 1

    def _deliver(self, sub: Subscription, item: FeedItem) -> None:
        try:
            sub._send.send_nowait(item)
        except trio.WouldBlock:
            self._drop(sub, reason="too_slow")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._drop(sub, reason="gone")
        else:
            self.stats.delivered += 1

    def _drop(self, sub: Subscription, *, reason: str) -> None:
        self._unregister(sub)
        sub._send.close()
        if reason == "too_slow":
            self.stats.dropped_subscribers += 1
            log.warning("feed_subscriber_dropped", topic=sub.topic, reason=reason)

    def _unregister(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.topic]
                ring = self._rings.get(sub.topic)
                # Nothing was ever published there (a made-up or silent call id): keep nothing.
                if ring is not None and not ring.items:
                    del self._rings[sub.topic]

    def replay_since(self, topic: str, last_seq: int | None) -> list[FeedItem] | None:
        """Items after ``last_seq`` in ``topic``, or None when they are not all still held."""
        if last_seq is None or last_seq > self._seq:
            return None
        if last_seq == self._seq:
            return []
        ring = self._rings.get(topic)
        if ring is None or ring.evicted_upto > last_seq:
            return None
        return [item for item in ring.items if item.seq > last_seq]

    @contextmanager
    def subscribe(self, topic: str) -> Iterator[Subscription]:
        send, receive = trio.open_memory_channel[FeedItem](self.subscriber_queue)
        sub = Subscription(topic=topic, receive=receive, send=send, start_seq=self._seq)
        if self._closed:
            # Shutting down: a page that reconnects now gets a feed that ends at once, not one
            # that nothing would close.
            send.close()
        else:
            self._ring(topic, self._seq)
            self._subscribers.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            self._unregister(sub)
            send.close()
            receive.close()

    def forget(self, topic: str) -> None:
        """Drop a topic's replay ring (its subscribers stay)."""
        self._rings.pop(topic, None)

    def ring_count(self) -> int:
        return len(self._rings)

    def subscriber_count(self, topic: str | None = None) -> int:
        if topic is not None:
            return len(self._subscribers.get(topic, ()))
        return sum(len(s) for s in self._subscribers.values())

    def close(self) -> None:
        """End every subscription, and every one made from now on."""
        self._closed = True
        for subs in tuple(self._subscribers.values()):
            for sub in tuple(subs):
                self._unregister(sub)
                sub._send.close()
