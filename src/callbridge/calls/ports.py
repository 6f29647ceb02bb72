"""The seams of a call: what a session needs from Twilio REST, Palabra and the transcript hub.

Production code passes ``TwilioRest``, ``open_palabra_link`` and ``TranscriptHub``; tests pass
in-memory fakes, which is what lets a whole call run on trio's mock clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import numpy as np
import trio
from numpy.typing import NDArray

from callbridge.records import CallRecord
from callbridge.roles import Direction

__all__ = ["CallControl", "LinkOpener", "OperatorSource", "TranscriptSink", "TranslatorLink"]


class CallControl(Protocol):
    """Twilio REST, as far as a call needs it (``callbridge.telephony.rest.TwilioRest``)."""

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        status_events: Sequence[str] = ...,
        timeout_s: int,
    ) -> Any: ...

    async def hangup(self, sid: str) -> None: ...

    async def cancel(self, sid: str) -> None: ...

    async def update_twiml(self, sid: str, twiml: str) -> None: ...

    async def fetch(self, sid: str) -> Any: ...


class TranslatorLink(Protocol):
    """One ready Palabra link for one direction (``callbridge.palabra.PalabraLink``)."""

    events: trio.MemoryReceiveChannel[Any]

    def feed(self, pcm24: NDArray[np.int16]) -> bool: ...


LinkOpener = Callable[[Direction], AbstractAsyncContextManager[TranslatorLink]]


class TranscriptSink(Protocol):
    """Where a call's record and transcript go (``callbridge.transcripts.TranscriptHub``)."""

    def publish(self, event: Any) -> None: ...

    def call_updated(self, record: CallRecord) -> None: ...


class OperatorSource(Protocol):
    """Which operator to ring next (``callbridge.calls.supervisor.OperatorPool``)."""

    def acquire(self, exclude: set[str]) -> str | None: ...

    def release(self, number: str) -> None: ...
