"""Redis stream entry ids and ``XINFO STREAM`` answers, as the feeds need them.

An entry id is ``<unix ms>-<sequence>`` (https://redis.io/commands/xadd/); ids compare as the
pair of integers.
"""

from __future__ import annotations

import re
from typing import Any, Final

import attrs
import redis

from callbridge.transcripts.broadcaster import FeedItem

__all__ = [
    "FIELD",
    "StreamId",
    "StreamState",
    "client_unblock",
    "feed_item",
    "fmt_stream_id",
    "parse_stream_id",
    "stream_state",
]

StreamId = tuple[int, int]
# The entry field holding a feed message's JSON.
FIELD: Final = "m"
_ID: Final = re.compile(r"(\d{1,20})-(\d{1,20})")


def parse_stream_id(text: str | None) -> StreamId | None:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; None for anything else."""
    match = _ID.fullmatch(text or "")
    return (int(match[1]), int(match[2])) if match else None


def fmt_stream_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@attrs.frozen
class StreamState:
    """A stream's newest id, and the id at or below which entries may have been removed."""

    last: StreamId
    deleted_upto: StreamId


def client_unblock(client: Any, *, client_id: int) -> bool:
    """End connection ``client_id``'s blocking command; False if it was not blocked."""
    return bool(client.execute_command("CLIENT", "UNBLOCK", client_id))


def feed_item(entry_id: str, fields: dict[str, str] | None) -> FeedItem | None:
    """A stream entry as a feed item (its id the feed id); None if it has no message."""
    payload = (fields or {}).get(FIELD)
    return FeedItem(0, payload.encode(), entry_id) if payload is not None else None


def stream_state(client: Any, key: str) -> StreamState | None:
    """``XINFO STREAM`` of ``key`` boiled down; None when the stream does not exist."""
    try:
        info = client.xinfo_stream(key)
    except redis.ResponseError:
        return None  # no such stream (yet, or any more)
    last = parse_stream_id(info.get("last-generated-id")) or (0, 0)
    # XDEL moves max-deleted-entry-id, trimming does not: an entry count above the length means
    # something before the first entry is gone (a resume from before it may have a hole).
    deleted = parse_stream_id(info.get("max-deleted-entry-id")) or (0, 0)
    if int(info.get("entries-added", 0)) > int(info.get("length", 0)):
        first = info.get("first-entry")
        first_id = parse_stream_id(first[0]) if first else None
        deleted = max(deleted, first_id or last)
    return StreamState(last=last, deleted_upto=deleted)
