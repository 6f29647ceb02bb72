"""Per-call integer counters and how they appear in Prometheus.

A call keeps plain integer counters on its own objects (``MediaStats``, the output clocks, the
Palabra links' ``LinkStats``...), bumped on the media path at the cost of an ``+= 1``. Nothing
there knows about Prometheus. At scrape time ``CallCounters`` snapshots of the live calls are
added to the totals folded in when each call ended (:class:`callbridge.metrics.registry.Metrics`),
so the per-frame path never pays for metrics.

``CallCounters`` is a ``Counter`` keyed by ``(metric, label value)``: every per-call metric has
exactly one label, named in :data:`CALL_METRICS`.
"""

from __future__ import annotations

from collections import Counter
from typing import Final, TypeAlias

import attrs

from callbridge.roles import Direction, Role

__all__ = ["CALL_METRICS", "CallCounters", "CallMetric"]

CallCounters: TypeAlias = Counter[tuple[str, str]]

_LEGS: Final = tuple(str(role) for role in Role)
_DIRECTIONS: Final = tuple(str(direction) for direction in Direction)
# palabra_feed: speech the link could not buffer; palabra_events: Palabra events the call did not
# take in time; translation_queue: translated speech past media.translation_queue_s; the
# transcript store's write queue and the pages' live feeds (a slow page is dropped).
CHANNELS: Final = (
    "palabra_feed",
    "palabra_events",
    "translation_queue",
    "transcript_store",
    "transcript_feed",
)


@attrs.frozen
class CallMetric:
    """One per-call counter: its Prometheus name (without ``_total``), help text, its one label
    and the label values always exported (at 0 until something happens)."""

    name: str
    help: str
    label: str
    seeded: tuple[str, ...] = ()


CALL_METRICS: Final[dict[str, CallMetric]] = {
    metric.name: metric
    for metric in (
        CallMetric(
            "callbridge_media_frames_received",
            "20 ms media frames received from Twilio, per leg (the leg's speaker)",
            "leg",
            _LEGS,
        ),
        CallMetric(
            "callbridge_media_frames_sent",
            "20 ms media frames queued to Twilio, per leg (the leg's listener)",
            "leg",
            _LEGS,
        ),
        CallMetric(
            "callbridge_media_frames_late",
            "output frames sent with silence for a speaker frame that then arrived late",
            "leg",
            _LEGS,
        ),
        CallMetric(
            "callbridge_media_frames_dropped",
            "output frames dropped because the leg's socket was not draining",
            "leg",
            _LEGS,
        ),
        CallMetric(
            "callbridge_media_invalid_messages",
            "malformed Twilio media stream messages, by reason",
            "reason",
        ),
        CallMetric(
            "callbridge_palabra_connects",
            "Palabra WebSocket connections opened (first ones and reconnects)",
            "direction",
            _DIRECTIONS,
        ),
        CallMetric(
            "callbridge_palabra_reconnects",
            "Palabra reconnects after a lost connection",
            "direction",
            _DIRECTIONS,
        ),
        CallMetric(
            "callbridge_palabra_notices",
            "Palabra warning and error messages after the task ran, by code",
            "code",
        ),
        CallMetric(
            "callbridge_channel_overflows",
            "items dropped by a full bounded channel, by channel",
            "channel",
            CHANNELS,
        ),
    )
}
