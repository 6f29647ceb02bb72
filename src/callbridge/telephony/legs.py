"""A Twilio media leg as a pair of bounded channels between the WebSocket handler and the call.

The quart WebSocket handler owns the socket and runs two pumps (``pump_websocket``); the call owns
everything else and sees only channels, so the call's nursery never depends on a request task.

Resource handling: the handler closes ``inbound`` when the socket ends (the call then sees
``EndOfChannel``); the call closes ``outbound`` when it ends (the handler's writer stops and the
handler returns, which closes the socket).

Full policies: inbound blocks the socket reader (TCP backpressure toward Twilio) — the call's
receive task does constant, tiny work per frame, so this only bites if the call is wedged, and then
the leg idle timeout ends the call. Outbound never blocks the mixer: ``send_audio`` drops the
message and counts it when the handler cannot keep up (a slow or stalled Twilio reader).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio

from callbridge.roles import Role

__all__ = ["INBOUND_QUEUE", "OUTBOUND_QUEUE", "MediaLeg", "pump_websocket"]

# 64 Twilio messages = 1.3 s of 20 ms frames.
INBOUND_QUEUE = 64
# 25 messages = 0.5 s of 20 ms frames; more than that queued means the socket is not draining.
OUTBOUND_QUEUE = 25


@attrs.define(eq=False)
class MediaLeg:
    role: Role
    # Call side.
    inbound: trio.MemoryReceiveChannel[str | bytes]
    outbound: trio.MemorySendChannel[str]
    # WebSocket-handler side.
    socket_in: trio.MemorySendChannel[str | bytes]
    socket_out: trio.MemoryReceiveChannel[str]

    @classmethod
    def open(cls, role: Role) -> MediaLeg:
        in_send, in_recv = trio.open_memory_channel[str | bytes](INBOUND_QUEUE)
        out_send, out_recv = trio.open_memory_channel[str](OUTBOUND_QUEUE)
        return cls(role, in_recv, out_send, in_send, out_recv)

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
        self.inbound.close()


async def pump_websocket(
    leg: MediaLeg,
    receive: Callable[[], Awaitable[str | bytes]],
    send: Callable[[str], Awaitable[None]],
) -> None:
    """Run in the WebSocket handler until either side ends; the first to finish ends both."""
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            with leg.socket_in:
                while True:
                    message = await receive()
                    try:
                        await leg.socket_in.send(message)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        break
            nursery.cancel_scope.cancel()

        async def writer() -> None:
            async with leg.socket_out:
                async for message in leg.socket_out:
                    await send(message)
            nursery.cancel_scope.cancel()

        nursery.start_soon(reader)
        nursery.start_soon(writer)
