"""Opening the transcript hub: the store it writes to, and the hub's tasks for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from callbridge.config import Config
from callbridge.transcripts.broadcaster import MAX_RINGS, Broadcaster
from callbridge.transcripts.feeds import FeedSource
from callbridge.transcripts.hub import ENDED_CALLS_KEPT, TranscriptHub
from callbridge.transcripts.store import TranscriptStore

__all__ = ["open_transcript_hub", "store_for"]


def store_for(config: Config) -> TranscriptStore:
    """PostgreSQL when ``transcripts.database_url`` is set, else SQLite under ``state_dir``.

    Blocking (it may create the directory): call it from a worker thread."""
    tc = config.transcripts
    kwargs: dict[str, Any] = {"owner": config.instance_id, "timeout_s": tc.store_timeout_s}
    if tc.database_url:
        return TranscriptStore.postgres(tc.database_url, **kwargs)
    return TranscriptStore.at(config.server.state_dir, **kwargs)


@asynccontextmanager
async def open_transcript_hub(
    config: Config, *, close_interrupted: bool = True, feeds: FeedSource | None = None
) -> AsyncIterator[TranscriptHub]:
    """Open the store (``store_for``) and run the hub for the ``async with`` block.

    ``feeds``: the cluster's live feeds (``Cluster.feeds``); None serves this process's own.
    ``close_interrupted=False`` leaves calls a dead process left open for restart recovery
    (``hub.store.own_live_calls()``, end them at Twilio, ``hub.close_calls(calls, reason)``).

    Resource handling: on exit, open feeds end, then every queued write is committed and the
    writer thread stops (shielded, so this also holds when the block is cancelled).
    """
    tc = config.transcripts
    store = await trio.to_thread.run_sync(store_for, config)
    reason = "interrupted" if close_interrupted else None
    await trio.to_thread.run_sync(lambda: store.start(interrupted_reason=reason))
    hub = TranscriptHub(
        config=tc,
        store=store,
        broadcaster=Broadcaster(
            replay_events=tc.replay_events,
            subscriber_queue=tc.subscriber_queue,
            # Every live call's ring plus the recently ended ones and the all-calls feed.
            max_rings=max(MAX_RINGS, config.server.max_calls + ENDED_CALLS_KEPT + 1),
        ),
        feeds=feeds,
    )
    # Queued before anything the hub's users write, so it can only remove older calls.
    store.prune(tc.retention_days)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub._prune_forever)
            nursery.start_soon(hub._watch_store)
            try:
                yield hub
            finally:
                nursery.cancel_scope.cancel()
    finally:
        hub.close_feeds()
        await store.close()
