"""An in-process fake Palabra for the link tests: WebSocket over trio memory streams, REST over
``httpx.MockTransport``. It speaks the current protocol (``task_status`` acknowledgements,
``end_of_stream``) and, with ``acknowledge=False``, an older server that must be polled with
``get_task`` (``NOT_FOUND`` until the task runs).

It enforces what makes the link tests meaningful:

- pacing: audio more than one chunk ahead of the clock since the first chunk ->
  ``warning AUDIO_STREAM_TOO_FAST``;
- idle: no audio for 10 s -> ``error SERVICE_TIMEOUT`` and close 1008;
- credentials: unknown ``?token=`` -> upgrade refused with 403; REST checks ClientId/ClientSecret;
- validation: ``segment_confirmation_silence_threshold >= min_silence_threshold`` and
  ``max_queue_level_ms > desired_queue_level_ms``, else ``error VALIDATION_ERROR``.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import numpy as np
import orjson
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    wrap_client_stream,
    wrap_server_stream,
)

SAMPLE_RATE = 24_000
API_PATH = "/streaming-api/{random_hash}/v1/speech-to-speech/stream"


@attrs.define(eq=False)
class FakeConnection:
    index: int
    path: str
    token: str
    ws: WebSocketConnection
    opened_at: float
    tasks: list[dict[str, Any]] = attrs.Factory(list)
    task_times: list[float] = attrs.Factory(list)  # when each accepted set_task arrived
    audio_at_task: list[int] = attrs.Factory(list)  # audio samples received before each task
    received: list[str] = attrs.Factory(list)  # message types, in order
    ready: bool = False
    get_task_count: int = 0
    audio_samples: int = 0
    nonzero_samples: int = 0
    chunks: int = 0
    audio_before_ready: int = 0
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    max_ahead_s: float = 0.0
    warnings_sent: list[str] = attrs.Factory(list)
    errors_sent: list[str] = attrs.Factory(list)
    end_task: bool = False
    closed_by_server: int | None = None
    double_encode: bool = False

    @property
    def audio_s(self) -> float:
        return self.audio_samples / SAMPLE_RATE

    @property
    def random_hash(self) -> str:
        return self.path.split("/")[2]

    async def send(self, message_type: str, data: Any) -> None:
        payload: Any = orjson.dumps(data).decode() if self.double_encode else data
        await self.ws.send_message(
            orjson.dumps({"message_type": message_type, "data": payload}).decode()
        )

    async def send_raw(self, text: str) -> None:
        await self.ws.send_message(text)

    async def send_transcript(
        self, message_type: str, tid: str, text: str, language: str, part: int = 0
    ) -> None:
        body: dict[str, object] = {
            "transcription_id": tid,
            "language": language,
            "text": text,
            "segments": [],
        }
        if "translated" in message_type:
            body["translation_part_id"] = part  # a number on transcripts
        await self.send(message_type, {"transcription": body})

    async def send_speech(
        self, tid: str, language: str, pcm: np.ndarray[Any, Any], last: bool, part: int = 0
    ) -> None:
        data = base64.b64encode(pcm.astype("<i2").tobytes()).decode()
        await self.send(
            "output_audio_data",
            {
                "transcription_id": tid,
                "translation_part_id": str(part),  # a string on audio
                "language": language,
                "last_chunk": last,
                "data": data,
                "chunk_generation_delta": None,
            },
        )


@attrs.define(eq=False)
class FakePalabra:
    api_key: str = "test-key"
    client_id: str = "client-id"
    client_secret: str = "client-secret"
    acknowledge: bool = True
    ready_delay_s: float = 0.5
    double_encode: bool = False
    eos_name: str = "end_of_stream"
    send_eos: bool = True
    idle_timeout_s: float = 10.0
    min_silence_threshold: float = 0.3
    # connection index -> seconds of audio after which the server closes with 1011
    drop_after_audio_s: dict[int, float] = attrs.Factory(dict)
    # connection index (or any index >= the key when refuse_from is set) -> upgrade status
    refuse: dict[int, int] = attrs.Factory(dict)
    refuse_from: int | None = None
    # statuses (or "transport") answered to the first session POSTs, in order
    rest_failures: list[int | str] = attrs.Factory(list)
    reply_delay_s: float = 0.0  # how long each REST reply takes to come back
    connections: list[FakeConnection] = attrs.Factory(list)
    rejected_upgrades: list[int] = attrs.Factory(list)
    sessions_created: list[str] = attrs.Factory(list)
    sessions_deleted: list[str] = attrs.Factory(list)
    rest_requests: list[tuple[str, str]] = attrs.Factory(list)
    on_ready: Callable[[FakeConnection], Any] | None = None
    _publishers: dict[str, str] = attrs.Factory(dict)
    _counter: itertools.count[int] = attrs.Factory(itertools.count)
    _nursery: trio.Nursery | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakePalabra]:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            yield self
            nursery.cancel_scope.cancel()

    def streaming_url(self) -> str:
        return "ws://fake.palabra" + API_PATH

    # --- WebSocket ----------------------------------------------------------------------------

    def connector(self) -> Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]:
        @asynccontextmanager
        async def connect(url: str) -> AsyncIterator[WebSocketConnection]:
            assert self._nursery is not None
            parts = urlsplit(url)
            resource = parts.path + (f"?{parts.query}" if parts.query else "")
            client, server = trio.testing.memory_stream_pair()
            self._nursery.start_soon(self._serve, server)
            try:
                async with trio.open_nursery() as nursery:
                    # Annotated for socket streams; it takes any trio Stream, memory ones included.
                    ws = await wrap_client_stream(
                        nursery,
                        client,  # type: ignore[arg-type]
                        parts.hostname or "fake",
                        resource,
                        max_message_size=2**24,
                    )
                    try:
                        yield ws
                    finally:
                        with trio.move_on_after(2) as scope:
                            scope.shield = True
                            await ws.aclose()
                        nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                if len(group.exceptions) == 1 and not isinstance(
                    group.exceptions[0], BaseExceptionGroup
                ):
                    raise group.exceptions[0] from None
                raise

        return connect

    def _refusal(self, index: int) -> int | None:
        if index in self.refuse:
            return self.refuse[index]
        if self.refuse_from is not None and index >= self.refuse_from:
            return 503
        return None

    async def _serve(self, stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream)
            index = next(self._counter)
            parts = urlsplit(request.path)
            token = parse_qs(parts.query).get("token", [""])[0]
            status = self._refusal(index)
            if status is None and token != self.api_key and token not in self._publishers:
                status = 403
            if status is not None:
                self.rejected_upgrades.append(status)
                await request.reject(status)
                return
            ws = await request.accept()
            conn = FakeConnection(
                index, parts.path, token, ws, trio.current_time(), double_encode=self.double_encode
            )
            self.connections.append(conn)
            try:
                async with trio.open_nursery() as inner:
                    inner.start_soon(self._idle_watchdog, conn)
                    await self._handle(conn, inner)
                    inner.cancel_scope.cancel()
            except* ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()

    async def _handle(self, conn: FakeConnection, nursery: trio.Nursery) -> None:
        while True:
            try:
                frame = await conn.ws.get_message()
            except ConnectionClosed:
                return
            message = orjson.loads(frame)
            kind = message["message_type"]
            conn.received.append(kind)
            data = message.get("data")
            if kind == "set_task":
                await self._set_task(conn, data, nursery)
            elif kind == "get_task":
                conn.get_task_count += 1
                if conn.ready:
                    await conn.send("current_task", {**conn.tasks[-1], "task_status": "running"})
                else:
                    await self._error(conn, "NOT_FOUND", "No active task found")
            elif kind == "input_audio_data":
                if await self._audio(conn, data):
                    return
            elif kind == "end_task":
                conn.end_task = True
                if self.send_eos:
                    await conn.send(self.eos_name, {})
                    await conn.ws.aclose(1000)
                    return

    async def _set_task(
        self, conn: FakeConnection, task: dict[str, Any], nursery: trio.Nursery
    ) -> None:
        problem = self._validate(task)
        if problem:
            await self._error(conn, "VALIDATION_ERROR", problem)
            return
        conn.tasks.append(task)
        conn.task_times.append(trio.current_time())
        conn.audio_at_task.append(conn.audio_samples)
        if conn.ready:  # an update of the running task: applied at once (current protocol)
            if self.acknowledge:
                event = "unchanged" if task == conn.tasks[-2] else "updated"
                await conn.send(
                    "task_status",
                    {"command": "set_task", "event": event, "task_status": "running"},
                )
            return
        nursery.start_soon(self._become_ready, conn)

    def _validate(self, task: dict[str, Any]) -> str | None:
        pipeline = task["pipeline"]
        threshold = pipeline["transcription"].get("segment_confirmation_silence_threshold", 0.7)
        if threshold < self.min_silence_threshold:
            return (
                "ValidationError(model='SetTaskRequestMessage', errors=[{'loc': ('pipeline', "
                "'transcription', 'segment_confirmation_silence_threshold'), 'msg': 'ensure this "
                f"value is greater than or equal to {self.min_silence_threshold}'}}])"
            )
        queue = pipeline.get("translation_queue_configs", {}).get("global", {})
        if queue and queue["max_queue_level_ms"] <= queue["desired_queue_level_ms"]:
            return "`max_queue_level_ms` must be greater than `desired_queue_level_ms`"
        source = task["input_stream"]["source"]
        if source["format"] != "pcm_s16le" or not 16000 <= source["sample_rate"] <= 48000:
            return "bad input_stream.source"
        return None

    async def _become_ready(self, conn: FakeConnection) -> None:
        await trio.sleep(self.ready_delay_s)
        conn.ready = True
        if self.acknowledge:
            await conn.send(
                "task_status", {"command": "set_task", "event": "started", "task_status": "running"}
            )
        if self.on_ready is not None:
            await self.on_ready(conn)

    async def _audio(self, conn: FakeConnection, data: dict[str, Any]) -> bool:
        """Account one chunk; True when the server decided to drop the connection."""
        now = trio.current_time()
        pcm = np.frombuffer(base64.b64decode(data["data"]), dtype="<i2")
        if not conn.ready:
            conn.audio_before_ready += 1
            return False
        if conn.first_audio_at is None:
            conn.first_audio_at = now
        conn.last_audio_at = now
        conn.chunks += 1
        conn.audio_samples += len(pcm)
        conn.nonzero_samples += int(np.count_nonzero(pcm))
        ahead = conn.audio_s - (now - conn.first_audio_at)
        conn.max_ahead_s = max(conn.max_ahead_s, ahead)
        if ahead > len(pcm) / SAMPLE_RATE + 1e-6:
            conn.warnings_sent.append("AUDIO_STREAM_TOO_FAST")
            await conn.send(
                "warning", {"code": "AUDIO_STREAM_TOO_FAST", "message": f"ahead by {ahead:.3f} s"}
            )
        drop_at = self.drop_after_audio_s.get(conn.index)
        if drop_at is not None and conn.audio_s >= drop_at:
            conn.closed_by_server = 1011
            await conn.ws.aclose(1011, "internal error")
            return True
        return False

    async def _idle_watchdog(self, conn: FakeConnection) -> None:
        while True:
            last = conn.last_audio_at if conn.last_audio_at is not None else conn.opened_at
            deadline = last + self.idle_timeout_s
            if trio.current_time() >= deadline:
                desc = "No input audio received for 10s. Use the pause_task command for intentional pauses."
                await self._error(conn, "SERVICE_TIMEOUT", desc)
                conn.closed_by_server = 1008
                await conn.ws.aclose(1008, "service timeout")
                return
            await trio.sleep_until(deadline)

    async def _error(self, conn: FakeConnection, code: str, desc: str) -> None:
        conn.errors_sent.append(code)
        await conn.send("error", {"code": code, "desc": desc, "param": None})

    # --- REST ---------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        async def reply(request: httpx.Request) -> httpx.Response:
            response = self._rest(request)  # the request takes effect at once...
            await trio.sleep(self.reply_delay_s)  # ...and its reply may take a while
            return response

        return httpx.MockTransport(reply)

    def _rest(self, request: httpx.Request) -> httpx.Response:
        self.rest_requests.append((request.method, request.url.path))
        if request.method == "POST" and self.rest_failures:
            failure = self.rest_failures.pop(0)
            if failure == "transport":
                msg = "connection refused"
                raise httpx.ConnectError(msg, request=request)
            assert isinstance(failure, int)
            return httpx.Response(failure, json={"ok": False, "errors": [{"title": "injected"}]})
        headers = request.headers
        if (
            headers.get("clientid") != self.client_id
            or headers.get("clientsecret") != self.client_secret
        ):
            return httpx.Response(401, json={"ok": False, "errors": [{"title": "Unauthorized"}]})
        path = request.url.path
        if request.method == "POST" and path == "/session-storage/session":
            n = len(self.sessions_created)
            session_id, publisher = f"session-{n}", f"publisher-{n}"
            self.sessions_created.append(session_id)
            self._publishers[publisher] = session_id
            ws_url = f"ws://fake.palabra/streaming-api/{n:08x}/v1/speech-to-speech/stream"
            body = {
                "ok": True,
                "data": {
                    "publisher": publisher,
                    "subscriber": [],
                    "webrtc_room_name": "room",
                    "webrtc_url": "wss://fake.palabra/livekit/",
                    "ws_url": ws_url,
                    "intent": "api",
                    "id": session_id,
                },
            }
            return httpx.Response(201, json=body)
        if request.method == "DELETE" and path.startswith("/session-storage/sessions/"):
            self.sessions_deleted.append(path.rsplit("/", 1)[1])
            return httpx.Response(204)
        return httpx.Response(404, json={"ok": False, "errors": [{"title": "Not Found"}]})
