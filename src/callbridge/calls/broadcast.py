"""``CallBroadcaster``: the call's only path to the transcript hub, one bounded channel and one task.

Transcript events and record updates come from the call's other tasks (the Palabra duplex tasks,
the listeners' mark echoes, the session) and must never make them wait: ``publish`` and
``call_updated`` queue without blocking, and the broadcaster task hands them to the hub in order.
The hub's own work (the store's queue, every page's feed) therefore happens beside the audio, not
inside it.

Full policy: ``BROADCAST_QUEUE`` items (a few seconds of a busy call's text). When it is full the
event is dropped, counted (``transcript_dropped`` in the call's summary) and logged once per call:
only the page and the store lose a line; the audio is never touched. Record updates are never
dropped, since the last one (the call ended) is what pages and the store rely on.

Resource handling: ``run`` lives in the call's nursery. When the call ends, ``close`` delivers
whatever is still queued and then the final record, so a page sees every event of the call before
it sees the call end.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from callbridge.calls.ports import TranscriptSink
from callbridge.log import get_logger
from callbridge.records import CallRecord
from callbridge.transcripts.events import TranscriptEvent

__all__ = ["BROADCAST_QUEUE", "CallBroadcaster"]

log = get_logger("callbridge.broadcast")

BROADCAST_QUEUE: Final = 256  # events; a call publishes a handful per utterance


class CallBroadcaster:
    """Queues a call's transcript events and record updates for the hub, in order."""

    def __init__(self, sink: TranscriptSink) -> None:
        self._sink = sink
        self._send, self._receive = trio.open_memory_channel[TranscriptEvent | CallRecord](
            BROADCAST_QUEUE
        )
        self._overflow: list[CallRecord] = []
        self.dropped = 0

    def publish(self, event: TranscriptEvent) -> None:
        """Queue a transcript event; dropped and counted when the queue is full."""
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            if self.dropped == 1:
                log.warning("transcript_dropped", kind=event.kind, queue=BROADCAST_QUEUE)

    def call_updated(self, record: CallRecord) -> None:
        """Queue a copy of ``record`` as it is now. Never dropped: past a full queue it waits
        in a list that ``run`` and ``close`` deliver first."""
        copy = attrs.evolve(record)
        if self._overflow:
            self._overflow.append(copy)
            return
        try:
            self._send.send_nowait(copy)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self._overflow.append(copy)

    async def run(self) -> None:
        """Deliver queued items to the hub until cancelled with the call."""
        async for item in self._receive:
            self._deliver(item)
            if self._receive.statistics().current_buffer_used == 0:
                self._deliver_overflow()

    def close(self, final: CallRecord) -> None:
        """The call is over: deliver what is still queued, then ``final``. Not a checkpoint."""
        self._send.close()
        while True:
            try:
                item = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self._deliver(item)
        self._deliver_overflow()
        self._receive.close()
        self._sink.call_updated(attrs.evolve(final))

    def _deliver_overflow(self) -> None:
        while self._overflow:
            self._sink.call_updated(self._overflow.pop(0))

    def _deliver(self, item: TranscriptEvent | CallRecord) -> None:
        if isinstance(item, CallRecord):
            self._sink.call_updated(item)
        else:
            self._sink.publish(item)
