"""Shared helpers for the Palabra simulator tests: a client speaking the wire protocol."""

from __future__ import annotations

import base64
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from callbridge.sim.palabra import RunningSim, SimOptions

__all__ = [
    "API_KEY",
    "FAST",
    "Client",
    "dominant_hz",
    "open_client",
    "silence",
    "stream_path",
    "task",
    "tone",
    "upgrade_status",
]

API_KEY = "sim-api-key"
# Short everything so each test takes well under a second or two of real time.
FAST: dict[str, Any] = {
    "ready_delay_s": 0.2,
    "translation_delay_s": 0.02,
    "tts_delay_s": 0.02,
    "output_speedup": 50.0,
    "queue_status_interval_s": 0.2,
    "min_speech_s": 0.06,
    "partial_interval_s": 0.2,
}


def fast_options(**overrides: Any) -> SimOptions:
    return SimOptions(**{**FAST, **overrides})


def task(
    source: str = "en",
    target: str = "es",
    *,
    silence: float = 0.3,
    rate: int = 24000,
    output: bool = True,
    allowed: list[str] | None = None,
    partials: bool = False,
) -> dict[str, Any]:
    pipeline: dict[str, Any] = {
        "transcription": {
            "source_language": source,
            "segment_confirmation_silence_threshold": silence,
        },
        "translations": [
            {
                "target_language": target,
                "speech_generation": {},
                "translate_partial_transcriptions": partials,
            }
        ],
    }
    if allowed is not None:
        pipeline["allowed_message_types"] = allowed
    return {
        "input_stream": {
            "content_type": "audio",
            "source": {"type": "ws", "format": "pcm_s16le", "sample_rate": rate, "channels": 1},
        },
        "output_stream": (
            {"content_type": "audio", "target": {"type": "ws", "format": "pcm_s16le"}}
            if output
            else None
        ),
        "pipeline": pipeline,
    }


def tone(hz: float, seconds: float, rate: int = 24000, amplitude: float = 0.3) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = 24000) -> bytes:
    return bytes(2 * round(seconds * rate))


def dominant_hz(pcm: bytes, rate: int = 24000) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


class Client:
    """A protocol client over trio-websocket. A background task reads every frame into an
    unbounded buffer, so a test may stream audio without reading (a real client reads
    concurrently; without this, both sides would block on full TCP buffers)."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._send_raw, self._inbox = trio.open_memory_channel[str | bytes](math.inf)
        self.closed: ConnectionClosed | None = None

    async def pump(self) -> None:
        async with self._send_raw:
            while True:
                try:
                    raw = await self.ws.get_message()
                except ConnectionClosed as exc:
                    self.closed = exc
                    return
                self._send_raw.send_nowait(raw)

    async def send(self, message_type: str, data: dict[str, Any]) -> None:
        await self.ws.send_message(orjson.dumps({"message_type": message_type, "data": data}))

    async def send_audio(self, pcm: bytes) -> None:
        await self.send("input_audio_data", {"data": base64.b64encode(pcm).decode()})

    async def stream(self, pcm: bytes, *, chunk_s: float = 0.1, rate: int = 24000) -> None:
        """Real-time pacing: absolute schedule, first chunk immediately (like the SDK)."""
        step = round(chunk_s * rate) * 2
        start = trio.current_time()
        for i, at in enumerate(range(0, len(pcm), step)):
            await trio.sleep_until(start + i * chunk_s)
            await self.send_audio(pcm[at : at + step])

    async def receive_raw(self) -> str | bytes:
        """The next frame as sent; raises ConnectionClosed once the socket is closed."""
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:
            assert self.closed is not None
            raise self.closed from None

    async def receive(self) -> dict[str, Any]:
        message = orjson.loads(await self.receive_raw())
        if isinstance(message.get("data"), str):
            message["data"] = orjson.loads(message["data"])
        self.seen.append(message)
        return dict(message)

    async def read_until_closed(self) -> ConnectionClosed:
        """Read (into ``seen``) until the server closes; return the close."""
        while True:
            try:
                await self.receive()
            except ConnectionClosed as closed:
                return closed

    async def until(self, message_type: str) -> dict[str, Any]:
        """Next message of this type; the others stay in ``seen``."""
        while True:
            message = await self.receive()
            if message.get("message_type") == message_type:
                return message

    async def ready(self, task_data: dict[str, Any]) -> dict[str, Any]:
        await self.send("set_task", task_data)
        return await self.until("task_status")

    def of_type(self, message_type: str) -> list[dict[str, Any]]:
        return [m for m in self.seen if m.get("message_type") == message_type]


async def upgrade_status(sim: RunningSim, target: str) -> int:
    """Status of a raw WebSocket upgrade request. (trio-websocket's client leaks its socket when
    a handshake is rejected, which the warnings-are-errors policy would turn into a failure.)"""
    port = sim.port
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request.encode())
        head = b""
        while b"\r\n" not in head:
            data = await stream.receive_some(4096)
            if not data:
                break
            head += data
    return int(head.split(b" ", 2)[1])


def stream_path(token: str | None = API_KEY, segment: str = "abc123") -> str:
    path = f"/streaming-api/{segment}/v1/speech-to-speech/stream"
    return path if token is None else f"{path}?token={token}"


@asynccontextmanager
async def open_client(
    sim: RunningSim, token: str | None = API_KEY, *, segment: str = "abc123"
) -> AsyncIterator[Client]:
    url = f"{sim.state.ws_base}/streaming-api/{segment}/v1/speech-to-speech/stream"
    if token is not None:
        url += f"?token={token}"
    opened: list[WebSocketConnection] = []
    try:
        async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:
            opened.append(ws)
            client = Client(ws)
            nursery.start_soon(client.pump)
            yield client
            nursery.cancel_scope.cancel()
    finally:
        # trio-websocket 0.12's client never closes its TCP stream when the SERVER closed the
        # WebSocket first (aclose() returns early once a close reason is set), which leaks a
        # socket (ResourceWarning). Close it ourselves once the library is done.
        for ws in opened:
            await trio.aclose_forcefully(ws._stream)
