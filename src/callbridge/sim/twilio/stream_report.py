"""What one fake-Twilio stream reports: the whole story (``/_sim/report``) and the load-test
window (``/_sim/stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callbridge.sim.twilio.media import StreamSession

__all__ = ["WINDOW_COUNTERS", "stream_report", "stream_window"]

# Cumulative counters that a window reports as differences since the window began.
WINDOW_COUNTERS = ("underrun_frames", "late_ticks", "underrun_frames_while_late", "warnings")


def stream_report(s: StreamSession) -> dict[str, Any]:
    return {
        "stream_sid": s.stream_sid,
        "call_sid": s.call.sid,
        "party": s.party.name,
        "url": s.url,
        "signed": s.signed,
        "custom_parameters": dict(s.spec.parameters),
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "end_reason": s.end_reason,
        "error": s.error,
        "messages_in": dict(s.messages_in),
        "messages_out": dict(s.messages_out),
        "bytes_received": s.bytes_received,
        "marks": s.marks,
        "clears": s.clears,
        "warnings": s.warnings,
        "faults": s.fault_log,
        "dtmf_sent": s.keypad.sent if s.keypad is not None else [],
        "underrun_frames": s.underrun_frames,
        "late_ticks": s.late_ticks,
        "underrun_frames_while_late": s.underrun_frames_while_late,
        "underrun_events": s.underrun_events,
        "longest_underrun_ms": s.longest_underrun_ms,
        "underrun_runs": [list(run) for run in s.underrun_runs],
        "buffered_ms": s.buffer.buffered_bytes // 8,
        "phase_ms": s.phase_ms,
    }


def stream_window(s: StreamSession) -> dict[str, Any]:
    """Counters since the previous window, then a new window begins: :data:`WINDOW_COUNTERS` as
    differences, and the tone onsets said and heard meanwhile (wall clock). The lateness and
    jitter histograms are taken by the caller (``reset_window()``), which merges them."""
    now = {
        "underrun_frames": s.underrun_frames,
        "late_ticks": s.late_ticks,
        "underrun_frames_while_late": s.underrun_frames_while_late,
        "warnings": len(s.warnings),
    }
    stats: dict[str, Any] = {k: v - s.window_base.get(k, 0) for k, v in now.items()}
    s.window_base = now
    stats.update(
        stream_sid=s.stream_sid,
        call_sid=s.call.sid,
        url=s.url,
        party=s.party.name,
        live=s.ended_at is None,
        phase_ms=s.phase_ms,
        said_onsets=s.said_onsets,
        heard_onsets=s.onsets.take() if s.onsets is not None else {},
    )
    s.said_onsets = []
    return stats
