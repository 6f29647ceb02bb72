"""Live transcripts: events from calls, the SQLite store, and the feeds pages subscribe to."""

from __future__ import annotations

from callbridge.transcripts.broadcaster import ALL_CALLS, Broadcaster, FeedItem, Subscription
from callbridge.transcripts.events import EventKind, TranscriptEvent, UtteranceState
from callbridge.transcripts.hub import Feed, TranscriptHub
from callbridge.transcripts.open_hub import open_transcript_hub
from callbridge.transcripts.store import TranscriptStore

__all__ = [
    "ALL_CALLS",
    "Broadcaster",
    "EventKind",
    "Feed",
    "FeedItem",
    "Subscription",
    "TranscriptEvent",
    "TranscriptHub",
    "TranscriptStore",
    "UtteranceState",
    "open_transcript_hub",
]
