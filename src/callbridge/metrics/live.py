"""The one place that reads a running daemon's objects for metrics and readiness.

Everything here is written against today's ``CallSupervisor`` / ``CallSession`` / ``CallMedia``,
``PalabraLink.stats`` and ``TranscriptStore`` attributes, several of them private. When those
objects change shape, this module is what changes; the metric definitions, the collector and the
routes only see ``CallCounters``, ``PlayoutSample`` and ``StoreFigures``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Final

import attrs

from callbridge.calls.session import CallSession
from callbridge.calls.supervisor import CallSupervisor
from callbridge.metrics.counters import CallCounters
from callbridge.roles import Role
from callbridge.service.health import StoreFigures
from callbridge.transcripts.hub import TranscriptHub
from callbridge.transcripts.store import TranscriptStore

__all__ = [
    "LiveDaemon",
    "PlayoutSample",
    "StoreFigures",
    "call_counters",
]

_FRAMES_IN: Final = "callbridge_media_frames_received"
_FRAMES_OUT: Final = "callbridge_media_frames_sent"
_LATE: Final = "callbridge_media_frames_late"
_DROPPED: Final = "callbridge_media_frames_dropped"
_INVALID: Final = "callbridge_media_invalid_messages"
_CONNECTS: Final = "callbridge_palabra_connects"
_RECONNECTS: Final = "callbridge_palabra_reconnects"
_NOTICES: Final = "callbridge_palabra_notices"
_OVERFLOWS: Final = "callbridge_channel_overflows"


def call_counters(session: CallSession) -> CallCounters:
    """A snapshot of one call's integer counters (see ``CALL_METRICS`` for their meaning)."""
    media = session.media
    counters = CallCounters()
    for role, output in media.outputs.items():
        leg = str(role)
        stats = output.stats
        counters[_FRAMES_IN, leg] += stats.frames_in
        counters[_FRAMES_OUT, leg] += stats.frames_out
        counters[_LATE, leg] += output.clock.late_originals
        counters[_DROPPED, leg] += output.send_dropped
        counters[_OVERFLOWS, "translation_queue"] += output.mixer.overflow_events
        for reason, count in stats.invalid.items():
            counters[_INVALID, reason] += count
    for direction, translator in media.translators.items():
        counters[_OVERFLOWS, "palabra_feed"] += translator.feed_dropped
        for code, count in translator.notices.items():
            counters[_NOTICES, code] += count
        link_stats = translator.link_stats
        if link_stats is not None:
            counters[_CONNECTS, str(direction)] += link_stats.connects
            counters[_RECONNECTS, str(direction)] += link_stats.reconnects
            dropped = link_stats.events_dropped + link_stats.speech_dropped
            counters[_OVERFLOWS, "palabra_events"] += dropped
    return +counters  # without zero entries


@attrs.frozen
class PlayoutSample:
    """The latest playout delay measured for one listener of one call, in seconds."""

    call_id: str
    listener: Role
    delay_s: float


@attrs.define
class LiveDaemon:
    """Read-only view of a running daemon's supervisor and transcript hub."""

    supervisor: CallSupervisor
    hub: TranscriptHub

    @property
    def active_calls(self) -> int:
        return self.supervisor.active_count

    @property
    def draining(self) -> bool:
        return self.supervisor.draining

    def calls(self) -> Iterator[tuple[str, CallCounters]]:
        """Every live call's id and counters."""
        for session in self.supervisor.sessions():
            yield session.record.id, call_counters(session)

    def counters_of(self, call_id: str) -> CallCounters:
        """One call's counters (empty when the supervisor no longer knows it)."""
        session = self.supervisor.find(call_id)
        return call_counters(session) if session is not None else CallCounters()

    def playout(self) -> Iterator[PlayoutSample]:
        """The last playout delay each live call's listeners measured."""
        for session in self.supervisor.sessions():
            for role, output in session.media.outputs.items():
                if output.probe.last_delay_s is not None:
                    yield PlayoutSample(session.record.id, role, output.probe.last_delay_s)

    def store(self) -> StoreFigures:
        store = self.hub.store
        thread = store._thread
        return StoreFigures(
            writer_alive=thread is not None and thread.is_alive(),
            directory_writable=_directory_writable(store),
            queue_depth=store._queue.qsize(),
            queue_capacity=store._queue.maxsize,
            written=store.stats.written,
            failed_writes=store.stats.failed_writes,
            dropped=store.stats.dropped,
        )

    def feed_subscribers_dropped(self) -> int:
        return self.hub.broadcaster.stats.dropped_subscribers


def _directory_writable(store: TranscriptStore) -> bool:
    """A file store's (SQLite's) directory must be writable; a server store (PostgreSQL) has no
    directory, and its health shows in the writer's progress instead."""
    try:
        path = store.path
    except AttributeError:
        return True
    return os.access(path.parent, os.W_OK)
