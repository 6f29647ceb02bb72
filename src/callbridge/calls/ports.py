"""The seams of a call: what a session needs from Twilio REST, Palabra, the transcript hub and
the operator pool.

Production code passes ``TwilioRest``, ``open_palabra_link``, ``TranscriptHub`` and
``routing.LanguageOperatorPool``; tests pass in-memory fakes, which is what lets a whole call run
on trio's mock clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from callbridge.audio import Pcm
from callbridge.palabra.events import PalabraEvent
from callbridge.palabra.link import LinkStats
from callbridge.palabra.task import TaskSettings
from callbridge.records import CallRecord
from callbridge.roles import Direction
from callbridge.routing import OperatorPool
from callbridge.telephony.rest import CallInfo
from callbridge.transcripts.events import TranscriptEvent

__all__ = ["CallControl", "LinkOpener", "OperatorPool", "TranscriptSink", "TranslatorLink"]


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
    ) -> CallInfo: ...

    async def hangup(self, sid: str) -> None: ...

    async def cancel(self, sid: str) -> None: ...

    async def update_twiml(self, sid: str, twiml: str) -> None: ...

    async def fetch(self, sid: str) -> CallInfo: ...


class TranslatorLink(Protocol):
    """One ready Palabra link for one direction (``callbridge.palabra.PalabraLink``)."""

    @property
    def events(self) -> trio.MemoryReceiveChannel[PalabraEvent]: ...

    @property
    def stats(self) -> LinkStats: ...

    def feed(self, pcm24: Pcm) -> bool: ...

    def end_by(self, deadline: float) -> None:
        """Cut the goodbye at ``deadline`` (trio time) at the latest (a daemon stopping)."""

    async def update_task(self, settings: TaskSettings) -> None: ...


# Opens a direction's link running this call's task (its languages: ``TaskSettings.resolve``).
LinkOpener = Callable[[Direction, TaskSettings], AbstractAsyncContextManager[TranslatorLink]]


class TranscriptSink(Protocol):
    """Where a call's record and transcript go (``callbridge.transcripts.TranscriptHub``)."""

    def publish(self, event: TranscriptEvent) -> None: ...

    def call_updated(self, record: CallRecord) -> None: ...
