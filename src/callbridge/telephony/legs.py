"""A Twilio media leg: how a call reads one Media Stream and writes to it, without owning the socket.

The WebSocket belongs to the server's connection handler (``media_socket.serve_media_socket``);
the call owns everything else and sees only a ``MediaLeg``:

- ``receive()``: the next message Twilio sent, read straight from the server's own bounded queue
  of received messages (hypercorn's per-connection app queue), so a frame reaches the call's
  receive task with one task switch. It raises ``LegClosed`` once the socket has ended.
- ``send(message)``: queue one message for Twilio without blocking; the handler's writer drains the
  queue into the socket.

Full policies: inbound is the server's bounded queue, so a call that stops reading pushes back on
Twilio through TCP (only a wedged call does, and the leg idle timeout ends it). Outbound never
blocks the mixer: ``send`` drops the message and reports it when ``OUTBOUND_QUEUE`` messages are
already waiting (a slow or stalled Twilio reader); the caller counts the drop.

Resource handling: the call closes the leg when it ends (``close``); the handler's writer then
stops, and the handler closes the socket. Tests build a leg over a memory channel
(``channel_inbound``) and read ``socket_out`` as Twilio would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio

from callbridge.roles import Role

__all__ = ["OUTBOUND_QUEUE", "Inbound", "LegClosed", "MediaLeg", "channel_inbound"]

# 25 messages = 0.5 s of 20 ms frames; more than that queued means the socket is not draining.
OUTBOUND_QUEUE: Final = 25

# The next message from Twilio (text, or bytes for a binary frame); raises ``LegClosed`` at the end.
Inbound = Callable[[], Awaitable[str | bytes]]


class LegClosed(Exception):
    """The media socket has ended. ``code`` is the close code when one is known."""

    def __init__(self, detail: str, code: int | None = None) -> None:
        self.detail = detail
        self.code = code
        super().__init__(detail)


@attrs.define(eq=False)
class MediaLeg:
    role: Role
    _inbound: Inbound
    # Call side.
    outbound: trio.MemorySendChannel[str]
    # Socket-handler side.
    socket_out: trio.MemoryReceiveChannel[str]

    @classmethod
    def open(cls, role: Role, inbound: Inbound) -> MediaLeg:
        """A leg reading ``inbound`` (the socket's messages, or a test's channel)."""
        out_send, out_recv = trio.open_memory_channel[str](OUTBOUND_QUEUE)
        return cls(role, inbound, out_send, out_recv)

    async def receive(self) -> str | bytes:
        """The next message from Twilio. Raises ``LegClosed`` when the socket has ended."""
        return await self._inbound()

    def send(self, message: str) -> bool:
        """Queue one message for Twilio without blocking; False when it was dropped (the caller
        counts drops: it knows which listener they hurt)."""
        try:
            self.outbound.send_nowait(message)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def close(self) -> None:
        """Call side: no more output; the handler will close the socket."""
        self.outbound.close()


def channel_inbound(channel: trio.MemoryReceiveChannel[str | bytes]) -> Inbound:
    """An ``Inbound`` over a memory channel (tests and simulators play Twilio through it); the
    channel's end is the socket's end."""

    async def receive() -> str | bytes:
        try:
            return await channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            msg = "socket closed"
            raise LegClosed(msg) from None

    return receive
