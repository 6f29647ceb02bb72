"""``TranscriptHub``: one per daemon; takes call and transcript events, stores and broadcasts them.

The call code reaches it through two non-blocking methods, ``call_updated`` and ``publish``;
neither ever waits or raises, because the caller may be pumping audio. Everything slow happens
elsewhere: SQLite writes on the store's thread, page delivery through bounded per-page channels.

In memory the hub keeps, per call, the record, the latest ``UTTERANCES_KEPT`` utterances
(partials included) and the replay ring of the call's feed: active calls always, and the last few
ended ones (``ENDED_CALLS_KEPT``) so a page on a just-ended call can still resume. Anything older
is read from the store: a call that outgrows the bound serves its snapshots from the store, so
memory per call stays flat however long the call lasts.

Resource handling: ``open_transcript_hub(config)`` starts the store writer and a pruning task; on
exit it ends every feed and flushes the store, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import orjson
import trio

from callbridge.config import TranscriptsConfig
from callbridge.log import get_logger
from callbridge.records import CallRecord
from callbridge.transcripts.broadcaster import (
    ALL_CALLS,
    Broadcaster,
    FeedItem,
    call_topic,
)
from callbridge.transcripts.events import (
    EVENT_KINDS,
    TranscriptEvent,
    UtteranceState,
    event_to_wire,
    utterance_wire,
)
from callbridge.transcripts.feeds import FeedSource
from callbridge.transcripts.store import StoreUnavailable, TranscriptStore

__all__ = ["ENDED_CALLS_KEPT", "UTTERANCES_KEPT", "Feed", "HubStats", "TranscriptHub"]

log = get_logger("callbridge.transcripts.hub")

# Ended calls kept in memory (record, utterances, replay ring) before only the store has them.
ENDED_CALLS_KEPT: Final = 8
# Utterances kept in memory per call (about 400 bytes each): an hour of talk is ~1200. Past this
# the oldest go, and the call's snapshots come from the store, which has them all.
UTTERANCES_KEPT: Final = 128
# How often old calls are pruned; retention is counted in days, so hourly is plenty.
_PRUNE_INTERVAL_S: Final = 3600.0
# How often the store's writer is checked (a flush that must complete within store_timeout_s).
_STORE_CHECK_S: Final = 30.0


def encode(message: Mapping[str, Any]) -> bytes:
    """``message`` as compact JSON, in a bytes object no bigger than its text.

    orjson returns its working buffer whatever the length (at least 4 KiB since 3.12, about 1 KiB
    before): a 250-byte event kept in a replay ring held 4 KiB, 16 times its size, for as long as
    the ring kept it (https://github.com/home-assistant/core/pull/181240 measured the same). The
    copy costs about 0.2 us.
    """
    # default=str: an odd value in an event's ``data`` becomes text instead of an exception.
    return bytes(memoryview(orjson.dumps(message, default=str, option=orjson.OPT_NON_STR_KEYS)))


@attrs.define
class _CallState:
    record: dict[str, Any] | None
    # True when the hub saw the call from its first event, so memory holds its whole transcript.
    complete: bool
    utterances: dict[str, UtteranceState] = attrs.Factory(dict)

    @property
    def ended(self) -> bool:
        return self.record is None or self.record.get("status") == "ended"

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.utterances.values(), key=lambda u: u.first_seen_at)
        return {"call": self.record, "utterances": [u.to_wire() for u in ordered]}


@attrs.frozen
class Feed:
    """What a page gets: ``initial`` items (a replay, or one snapshot), then ``receive``."""

    boot: str
    initial: list[FeedItem]
    receive: trio.MemoryReceiveChannel[FeedItem]

    def event_id(self, item: FeedItem) -> str:
        return item.event_id or f"{self.boot}-{item.seq}"


@attrs.define
class HubStats:
    events: int = 0
    rejected: int = 0
    after_close: int = 0


@attrs.define
class TranscriptHub:
    """See the module docstring; build with ``open_transcript_hub``."""

    config: TranscriptsConfig
    store: TranscriptStore
    broadcaster: Broadcaster
    # Cluster mode: events go out through it (Redis Streams) and pages subscribe through it, so
    # every instance's pages see every call. None: this process's broadcaster does both.
    feeds: FeedSource | None = None
    stats: HubStats = attrs.Factory(HubStats)
    _calls: dict[str, _CallState] = attrs.Factory(dict)
    _retired: OrderedDict[str, None] = attrs.Factory(OrderedDict)
    _closed: bool = False

    # --- the call side (synchronous, never blocks, never raises) --------------------------------

    def call_updated(self, record: CallRecord) -> None:
        """A call started, was answered or ended (``record.status``): store and broadcast it."""
        self.publish(TranscriptEvent.call(record, time.time()))

    def publish(self, event: TranscriptEvent) -> None:
        """Fan ``event`` out to its pages and persist what it finalises.

        Error handling: a malformed event is logged and counted, never raised: the caller is the
        audio path, and a transcript problem must not end a call.
        """
        if self._closed:
            self.stats.after_close += 1
            return
        try:
            self._publish(event)
        except Exception as exc:  # broad on purpose: nothing may reach the audio path
            self.stats.rejected += 1
            log.error(
                "transcript_event_rejected",
                call_id=getattr(event, "call_id", None),
                kind=getattr(event, "kind", None),
                error=repr(exc),
            )

    def _publish(self, event: TranscriptEvent) -> None:
        if event.kind not in EVENT_KINDS:
            msg = f"unknown event kind {event.kind!r}"
            raise ValueError(msg)
        if event.kind == "audio_started":  # for metrics only: nothing to store or show
            return
        state = self._state_for(event)
        if event.kind == "call":
            self._record_call(event.call_id, state, event.data)
        else:
            self._record_utterance(state, event)
        self.stats.events += 1
        topics = (
            (call_topic(event.call_id), ALL_CALLS)
            if event.kind == "call"
            else (call_topic(event.call_id),)
        )
        message = encode({"type": "event", **event_to_wire(event)})
        if self.feeds is not None:
            self.feeds.publish(topics, message)
            return
        self.broadcaster.publish(topics, FeedItem(self.broadcaster.next_seq(), message))

    def _state_for(self, event: TranscriptEvent) -> _CallState:
        state = self._calls.get(event.call_id)
        if state is None:
            state = self._calls[event.call_id] = _CallState(
                record=None, complete=event.kind == "call"
            )
            if event.kind != "call":
                log.warning("transcript_event_for_unknown_call", call_id=event.call_id)
                self._retire(event.call_id)
        return state

    def _record_call(self, call_id: str, state: _CallState, data: Mapping[str, object]) -> None:
        record = dict(data)
        if record.get("id") != call_id:
            msg = f"call event data is for call {record.get('id')!r}, not {call_id!r}"
            raise ValueError(msg)
        state.record = record
        self.store.save_call(record)
        if state.ended:
            self._retire(call_id)
        else:
            self._retired.pop(call_id, None)

    def _record_utterance(self, state: _CallState, event: TranscriptEvent) -> None:
        if event.utterance_id is None:
            msg = f"a {event.kind} event needs an utterance_id"
            raise ValueError(msg)
        utterance = state.utterances.get(event.utterance_id)
        if utterance is None:
            utterance = state.utterances[event.utterance_id] = UtteranceState.start(event)
            if len(state.utterances) > UTTERANCES_KEPT:
                # A late piece of an evicted utterance starts a fresh state whose unknown
                # columns are None, which the store's upsert leaves as they were.
                del state.utterances[next(iter(state.utterances))]
                state.complete = False
        if utterance.apply(event):
            self.store.save_utterance(utterance.row())

    def _retire(self, call_id: str) -> None:
        self._retired[call_id] = None
        self._retired.move_to_end(call_id)
        while len(self._retired) > ENDED_CALLS_KEPT:
            old, _ = self._retired.popitem(last=False)
            self._calls.pop(old, None)
            self.broadcaster.forget(call_topic(old))

    def utterances_held(self, call_id: str) -> int:
        """How many of a call's utterances memory holds (at most ``UTTERANCES_KEPT``)."""
        state = self._calls.get(call_id)
        return len(state.utterances) if state is not None else 0

    # --- the page side ---------------------------------------------------------------------------

    def active_calls(self) -> list[dict[str, Any]]:
        """Records of calls not yet ended, newest first."""
        records = [s.record for s in self._calls.values() if s.record and not s.ended]
        return sorted(records, key=_received_at, reverse=True)

    async def list_calls(self) -> list[dict[str, Any]]:
        """Active calls and the ``recent_calls`` latest ended ones, newest first."""
        stored = await self.store.list_calls(self.config.recent_calls)
        by_id = {call["id"]: call for call in stored}
        # Memory is never behind the store, and it knows calls whose first write is still queued.
        for record in self.active_calls():
            by_id[record["id"]] = record
        calls = sorted(by_id.values(), key=_received_at, reverse=True)
        return [{**call, "active": call.get("status") != "ended"} for call in calls]

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        """``{"call": record, "utterances": [...]}`` from the store, or None if unknown."""
        found = await self.store.get_call(call_id)
        if found is None:
            return None
        found["utterances"] = [utterance_wire(row) for row in found["utterances"]]
        return found

    @asynccontextmanager
    async def open_feed(
        self, call_id: str | None, last_event_id: str | None
    ) -> AsyncIterator[Feed]:
        """Subscribe to one call (or to all calls' status with ``call_id=None``).

        A page that reconnects with the id of the last event it saw gets what it missed; otherwise
        (first connection, another daemon process, too far behind) it gets a snapshot first.
        """
        topic = ALL_CALLS if call_id is None else call_topic(call_id)
        bc = self.broadcaster
        if self.feeds is not None:
            async with self.feeds.subscribe(topic, last_event_id) as remote:
                initial = remote.replay
                if initial is None:
                    snapshot = await self._snapshot(call_id)
                    initial = [FeedItem(0, snapshot, remote.snapshot_id), *remote.tail]
                yield Feed(boot=bc.boot, initial=initial, receive=remote.receive)
            return
        with bc.subscribe(topic) as sub:
            initial = bc.replay_since(topic, bc.parse_feed_id(last_event_id))
            if initial is None:
                # Events published while a store read runs also reach ``sub``: pages apply them
                # idempotently, so overlap with the snapshot is harmless and nothing is missed.
                initial = [FeedItem(sub.start_seq, await self._snapshot(call_id))]
            yield Feed(boot=bc.boot, initial=initial, receive=sub.receive)

    async def _snapshot(self, call_id: str | None) -> bytes:
        body = await (self._calls_snapshot() if call_id is None else self._call_snapshot(call_id))
        message = {
            "type": "snapshot",
            "server_time": time.time(),
            "heartbeat_s": self.config.heartbeat_s,
            **body,
        }
        return encode(message)

    async def _call_snapshot(self, call_id: str) -> dict[str, Any]:
        state = self._calls.get(call_id)
        if state is not None and state.complete:
            return state.snapshot()
        found = await self.get_call(call_id)
        return found if found is not None else {"call": None, "utterances": []}

    async def _calls_snapshot(self) -> dict[str, Any]:
        return {"calls": await self.list_calls()}

    def close_calls(self, calls: Sequence[Mapping[str, Any]], reason: str) -> None:
        """Mark ``calls`` (rows from ``store.live_calls``) ended with ``reason`` now: stored, and
        shown live on every page. For calls no process runs any more (restart recovery, a dead
        instance's calls); each keeps its ``owner``."""
        now = time.time()
        for call in calls:
            record = {**call, "status": "ended", "end_reason": call.get("end_reason") or reason}
            record["ended_at"] = call.get("ended_at") or now
            self.publish(TranscriptEvent.call_snapshot(record, now))

    # --- lifecycle -------------------------------------------------------------------------------

    async def _watch_store(self) -> None:
        """Log once when the store's writer stops committing (dead or wedged), once when it
        recovers; ``store.health()`` and reads tell the same to whoever asks."""
        problem: str | None = None
        while True:
            await trio.sleep(_STORE_CHECK_S)
            try:
                await self.store.flush()
            except StoreUnavailable as exc:
                if problem is None:
                    log.error("store_unhealthy", error=str(exc))
                problem = str(exc)
            else:
                if problem is not None:
                    log.info("store_healthy_again", was=problem)
                problem = None

    async def _prune_forever(self) -> None:
        while True:
            await trio.sleep(_PRUNE_INTERVAL_S)
            self.store.prune(self.config.retention_days)

    def close_feeds(self) -> None:
        """End every open feed now (shutdown), so pages reconnect elsewhere instead of holding the
        web server's graceful stop open; idempotent."""
        self._closed = True
        self.broadcaster.close()
        if self.feeds is not None:
            self.feeds.close()


def _received_at(record: Mapping[str, Any]) -> float:
    value = record.get("received_at")
    return float(value) if isinstance(value, int | float) else 0.0
