"""SSE framing: initial items, live items, heartbeats when quiet, end when the channel ends."""

from __future__ import annotations

import trio

from callbridge.transcripts.broadcaster import FeedItem
from callbridge.transcripts.hub import Feed
from callbridge.web.sse import HEARTBEAT, sse_frame, sse_stream


async def test_stream_frames_heartbeats_and_ends(autojump_clock: trio.testing.MockClock) -> None:
    send, receive = trio.open_memory_channel[FeedItem](4)
    feed = Feed(boot="b00t", initial=[FeedItem(3, b'{"type":"snapshot"}')], receive=receive)
    stream = sse_stream(feed, heartbeat_s=15)
    with trio.fail_after(100):
        assert await anext(stream) == b"retry: 1000\n\n"
        assert await anext(stream) == b'id: b00t-3\ndata: {"type":"snapshot"}\n\n'
        started = trio.current_time()
        assert await anext(stream) == HEARTBEAT
        assert trio.current_time() - started == 15
        send.send_nowait(FeedItem(4, b'{"k":1}'))
        assert await anext(stream) == sse_frame("b00t-4", b'{"k":1}')
        send.close()
        assert [chunk async for chunk in stream] == []
