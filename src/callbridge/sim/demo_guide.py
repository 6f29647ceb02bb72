"""What ``callbridge demo`` says to explain itself: the summary's legend, and what to try while
the stack is kept up (``--keep-running``, or until Enter on a terminal)."""

from __future__ import annotations

import contextlib
import sys
from typing import Final

__all__ = ["LEGEND", "keep_running_lines", "legend_lines", "wait_for_enter"]

# Each entry: a term exactly as the summary or the narration prints it, and what it means.
LEGEND: Final = (
    (
        "after Palabra's end of speech",
        "from the end of the utterance, as Palabra's final transcription reports it, to the "
        "translated text reaching the daemon / to the listener's phone playing the last frame",
    ),
    (
        "+N.NN s",
        "in the summary: seconds after the speaker's phone sent the turn's last audio frame",
    ),
    ("translation received", "Palabra's translated text reached the daemon"),
    (
        "first translated audio heard",
        "the first loud 20 ms of the translated voice in the listener's recording",
    ),
    (
        "heard to the end",
        "Twilio echoed the mark sent after the translation's last frame: the listener heard it all",
    ),
    (
        "found in",
        "how closely the translated audio matches the listener's recording (normalised "
        "cross-correlation: 1.00 identical, 0.60 or more passes); 'wrong side' is the same "
        "search in the speaker's own recording and must stay low (nobody hears themselves)",
    ),
    (
        "underrun",
        "20 ms playout ticks at which the simulated phone had no audio queued and played "
        "silence (a busy machine); a few per call are harmless",
    ),
    (
        "marks",
        "Twilio marks echoed by that phone: playout probes and ends of translations heard",
    ),
)


def legend_lines() -> list[str]:
    width = max(len(term) for term, _ in LEGEND)
    return ["How to read the figures:"] + [
        f"  {term:<{width}}  {meaning}" for term, meaning in LEGEND
    ]


def keep_running_lines(app_url: str, twilio_url: str, palabra_url: str, token: str) -> list[str]:
    """Where to look while the daemon and the simulators stay up."""
    auth = f"Authorization: Bearer {token}"
    return [
        f"  calls (transcripts): {app_url}/calls  (login token: {token})",
        f"  metrics:             curl -H '{auth}' {app_url}/metrics",
        f"  health, readiness:   {app_url}/healthz, {app_url}/readyz",
        f"  another call:        curl -X POST {twilio_url}/_sim/call",
        f"  simulator reports:   {twilio_url}/_sim/report, {palabra_url}/_sim/report",
    ]


def wait_for_enter(prompt: str) -> bool:
    """On a terminal, print ``prompt`` and wait for Enter (or Ctrl-D); True if it waited."""
    if not sys.stdin.isatty():
        return False
    print(prompt, flush=True)
    # Ctrl-C here means "stop" too: the caller stops everything either way.
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        sys.stdin.readline()
    return True
