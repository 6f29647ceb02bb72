"""Server-sent events framing for transcript feeds.

A feed starts with ``retry:`` (how soon the browser reconnects), then the feed's initial items, then
live items as they come. When nothing happened for ``heartbeat_s`` it sends a heartbeat message, so
pages can tell a quiet call from a dead connection, and a vanished client is noticed on the write.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final

import trio

from callbridge.transcripts.broadcaster import FeedItem
from callbridge.transcripts.hub import Feed

__all__ = ["HEARTBEAT", "RETRY_MS", "sse_frame", "sse_stream"]

# Browsers reconnect this soon after a feed drops (a daemon restart, a slow page dropped).
RETRY_MS: Final = 1000
# A heartbeat carries no id, so it does not move the page's resume point.
HEARTBEAT: Final = b'data: {"type":"heartbeat"}\n\n'


def sse_frame(event_id: str, payload: bytes) -> bytes:
    # The JSON payload never contains a raw newline (orjson escapes them), so one data line holds it.
    return b"id: " + event_id.encode() + b"\ndata: " + payload + b"\n\n"


async def sse_stream(feed: Feed, heartbeat_s: float) -> AsyncGenerator[bytes, None]:
    """Frames for ``feed`` until its channel ends (the page was dropped, or shutdown)."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    for first in feed.initial:
        yield sse_frame(feed.event_id(first), first.payload)
    while True:
        item: FeedItem | None = None
        with trio.move_on_after(heartbeat_s):
            try:
                item = await feed.receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
        yield HEARTBEAT if item is None else sse_frame(feed.event_id(item), item.payload)
