"""``FeedSource``: where the hub's live feeds come from when they are not this process's own.

Without a cluster the hub fans events out itself (``Broadcaster``). In a cluster every instance's
pages must see every call, so the hub hands each encoded event to a ``FeedSource``
(``callbridge.cluster.streams.StreamFeeds``, on Redis Streams) and subscribes pages through it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs
import trio

from callbridge.transcripts.broadcaster import FeedItem

__all__ = ["FeedSource", "FeedSubscription"]


@attrs.frozen
class FeedSubscription:
    """``replay``: what the page missed since its last id, or None when it needs a snapshot
    first (no id, an unknown or too old one). Then ``snapshot_id`` is the feed id to give that
    snapshot, and ``tail`` the recent items to send right after it: the snapshot is read from a
    store another instance writes, and may lag the live events by a few milliseconds (pages
    apply items idempotently, so overlap is harmless)."""

    replay: list[FeedItem] | None
    snapshot_id: str
    receive: trio.MemoryReceiveChannel[FeedItem]
    tail: list[FeedItem] = attrs.Factory(list)


class FeedSource(Protocol):
    def publish(self, topics: tuple[str, ...], payload: bytes) -> None:
        """Queue ``payload`` for every topic's subscribers everywhere; never blocks or raises."""

    def subscribe(
        self, topic: str, last_event_id: str | None
    ) -> AbstractAsyncContextManager[FeedSubscription]:
        """Live items of ``topic`` from now on, plus what was missed after ``last_event_id``."""

    def close(self) -> None:
        """End every subscription, and every one made from now on."""
