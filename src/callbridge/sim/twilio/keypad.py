"""The keys a party presses during its Media Stream, sent as ``dtmf`` events.

Twilio reports a key pressed on a bidirectional stream as ``{"event": "dtmf", "dtmf": {"track":
"inbound_track", "digit": "3"}}`` (Twilio, "Media Streams - WebSocket Messages"). Keys come from
the scenario's ``dtmf`` list (at their times after the stream started) or are pressed at runtime
(``press``, ``POST /_sim/dtmf``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from callbridge.sim.twilio.audio import Party
from callbridge.sim.twilio.scenario import DtmfSpec

__all__ = ["Keypad"]

Send = Callable[[dict[str, Any]], None]


class Keypad:
    """One party's keypad while its stream runs (``run`` lives in the stream's nursery)."""

    def __init__(self, party: Party, scripted: Sequence[DtmfSpec]) -> None:
        self._party = party
        self._scripted = [spec for spec in scripted if spec.party == party.name]
        self._keys: trio.MemorySendChannel[DtmfSpec] | None = None
        self.sent: list[dict[str, Any]] = []

    def press(self, spec: DtmfSpec) -> bool:
        """Press ``spec.digits`` now (``at_s`` ignored); False when the stream is not live."""
        if self._keys is None:
            return False
        try:
            self._keys.send_nowait(spec)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    async def run(self, send: Send) -> None:
        """Send the scenario's keys at their times, and runtime presses as they come."""
        keys, receive = trio.open_memory_channel[DtmfSpec](16)
        self._keys = keys
        origin = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                for spec in self._scripted:
                    nursery.start_soon(self._press, send, spec, origin + spec.at_s)
                async for spec in receive:
                    nursery.start_soon(self._press, send, spec, trio.current_time())
        finally:
            self._keys = None

    async def _press(self, send: Send, spec: DtmfSpec, at: float) -> None:
        for index, digit in enumerate(spec.digits):
            await trio.sleep_until(at + index * spec.gap_s)
            self.sent.append({"digit": digit, "at": time.time()})
            self._party.events.append({"kind": "dtmf", "digit": digit, "at": time.time()})
            send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})
