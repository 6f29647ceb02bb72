"""Fault injection, switchable from the command line and at runtime (``POST /_sim/faults``).

Counters mean "the next N times" and ``-1`` means "every time":

- ``session_5xx``: the next N ``POST /session-storage/session`` answer 503 (then they succeed).
- ``reject_task``: the next N ``set_task`` are refused with ``VALIDATION_ERROR``.
- ``wrong_token``: the next N WebSocket upgrades get 403 even with a valid token.
- ``drop_after_s`` + ``drop_count``: the next ``drop_count`` connections that become ready are
  dropped ``drop_after_s`` seconds after readiness: the TCP socket is closed with no close frame.
- ``stall_output``: while true, every connection stops sending anything (no frames, no close)
  but keeps its socket open and keeps reading.
- ``drop_mid_speech`` + ``drop_mid_speech_chunks``: the next ``drop_mid_speech`` connections
  are dropped (TCP closed, no close frame) right after sending the ``drop_mid_speech_chunks``-th
  ``output_audio_data`` chunk of an utterance that has more: the client holds a sentence whose
  ``last_chunk`` will never come.

At runtime, ``{"connection": "c3", ...}`` aims the changes at that live connection alone: it gets
a ``Faults`` of its own (``SimState.connection_faults``), which replaces these for it.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["FaultPlan", "Faults"]

_COUNTERS = ("session_5xx", "reject_task", "wrong_token", "drop_count", "drop_mid_speech")


@attrs.frozen
class FaultPlan:
    """Faults armed at start-up (the CLI flags)."""

    session_5xx: int = 0
    reject_task: int = 0
    wrong_token: int = 0
    drop_after_s: float | None = None
    drop_count: int = 1
    stall_output: bool = False
    drop_mid_speech: int = 0
    drop_mid_speech_chunks: int = 3


@attrs.define
class Faults:
    session_5xx: int = 0
    reject_task: int = 0
    wrong_token: int = 0
    drop_after_s: float | None = None
    drop_count: int = 0
    stall_output: bool = False
    drop_mid_speech: int = 0
    drop_mid_speech_chunks: int = 3

    @classmethod
    def from_plan(cls, plan: FaultPlan) -> Faults:
        return cls(
            session_5xx=plan.session_5xx,
            reject_task=plan.reject_task,
            wrong_token=plan.wrong_token,
            drop_after_s=plan.drop_after_s,
            drop_count=plan.drop_count if plan.drop_after_s is not None else 0,
            stall_output=plan.stall_output,
            drop_mid_speech=plan.drop_mid_speech,
            drop_mid_speech_chunks=plan.drop_mid_speech_chunks,
        )

    def take_session_5xx(self) -> bool:
        return self._take("session_5xx")

    def take_reject_task(self) -> bool:
        return self._take("reject_task")

    def take_wrong_token(self) -> bool:
        return self._take("wrong_token")

    def take_drop(self) -> float | None:
        """Seconds after readiness to drop this connection, or None."""
        if self.drop_after_s is None or not self._take("drop_count"):
            return None
        return self.drop_after_s

    def take_drop_mid_speech(self, chunks_sent: int) -> bool:
        """Whether to drop the connection now, ``chunks_sent`` chunks into an utterance's
        speech that is not over."""
        return chunks_sent == self.drop_mid_speech_chunks and self._take("drop_mid_speech")

    def _take(self, name: str) -> bool:
        left: int = getattr(self, name)
        if left == 0:
            return False
        if left > 0:
            setattr(self, name, left - 1)
        return True

    def update(self, changes: Any) -> list[str]:
        """Apply a JSON object of changes; return problems (nothing is applied if any)."""
        if not isinstance(changes, dict):
            return ["expected a JSON object"]
        problems = []
        for key, value in changes.items():
            if key in _COUNTERS:
                if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                    problems.append(f"{key}: expected an integer >= -1")
            elif key == "drop_after_s":
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float) or value < 0
                ):
                    problems.append("drop_after_s: expected a number >= 0 or null")
            elif key == "drop_mid_speech_chunks":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    problems.append(f"{key}: expected an integer >= 1")
            elif key == "stall_output":
                if not isinstance(value, bool):
                    problems.append("stall_output: expected true or false")
            else:
                problems.append(f"{key}: unknown fault")
        if problems:
            return problems
        for key, value in changes.items():
            setattr(
                self, key, float(value) if key == "drop_after_s" and value is not None else value
            )
        if "drop_after_s" in changes and "drop_count" not in changes and self.drop_count == 0:
            self.drop_count = 1
        return []

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)
