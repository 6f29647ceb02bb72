"""In-memory stand-ins for Twilio REST, Palabra links, the transcript hub and Twilio media legs."""

from __future__ import annotations

import base64
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import numpy as np
import orjson
import trio
from numpy.typing import NDArray

from callbridge.audio import ulaw_decode, ulaw_encode
from callbridge.errors import PalabraUnavailable, TwilioError
from callbridge.palabra.events import LanguageDetected, SpeechChunk, Transcript
from callbridge.palabra.link import LinkStats
from callbridge.palabra.task import TaskSettings
from callbridge.records import CallRecord
from callbridge.roles import Direction, Role
from callbridge.sim.analysis import sine
from callbridge.telephony.legs import Inbound, MediaLeg, channel_inbound
from callbridge.telephony.rest import CallInfo


@attrs.define
class FakeControl:
    """Records every REST action; ``create_call`` hands out CA sids."""

    actions: list[tuple[str, ...]] = attrs.Factory(list)
    statuses: dict[str, str] = attrs.Factory(dict)  # what fetch() reports, by sid
    _sids: Any = attrs.Factory(lambda: (f"CA{n:032d}" for n in itertools.count(1)))
    dialed: trio.MemorySendChannel[str] | None = None
    # Failures for the next creates, in order: (HTTP status or None, whether the call was placed
    # anyway). A placed one is recorded as ("create", to, sid); one that was not, as
    # ("create_refused", to).
    create_errors: list[tuple[int | None, bool]] = attrs.Factory(list)

    create_delay_s: float = 0.0  # the create's answer comes this late (the call is placed at once)
    create_answers: int = 0  # creates that have answered (or failed) so far
    create_urls: list[tuple[str, str]] = attrs.Factory(list)  # (Url, StatusCallback) per create
    # Raised by every cancel, and every hang-up of an operator call, when set.
    cancel_error: TwilioError | None = None

    async def create_call(
        self, *, to: str, from_: str, url: str, status_callback: str, timeout_s: int, **_: Any
    ) -> CallInfo:
        status, placed = self.create_errors.pop(0) if self.create_errors else (201, True)
        self.create_urls.append((url, status_callback))
        if placed:
            sid: str = next(self._sids)
            self.actions.append(("create", to, sid))
        else:
            self.actions.append(("create_refused", to))
        await trio.sleep(self.create_delay_s)
        self.create_answers += 1
        if status != 201:
            raise TwilioError(f"Twilio create failed: {status}", status=status, code=None)
        return CallInfo(sid, "queued", to, from_)

    stalled: bool = False  # hang-ups, cancels and updates never get an answer

    async def hangup(self, sid: str) -> None:
        self.actions.append(("hangup", sid))
        await self._maybe_stall()
        if self.cancel_error is not None and ("create", sid) in {
            (a[0], a[-1]) for a in self.actions
        }:
            raise self.cancel_error

    async def cancel(self, sid: str) -> None:
        self.actions.append(("cancel", sid))
        await self._maybe_stall()
        if self.cancel_error is not None:
            raise self.cancel_error

    async def update_twiml(self, sid: str, twiml: str) -> None:
        self.actions.append(("twiml", sid, twiml))
        await self._maybe_stall()

    async def _maybe_stall(self) -> None:
        if self.stalled:
            await trio.sleep_forever()

    fetch_error: TwilioError | None = None  # raised by every fetch when set

    async def fetch(self, sid: str) -> CallInfo:
        self.actions.append(("fetch", sid))
        if self.fetch_error is not None:
            raise self.fetch_error
        return CallInfo(sid, self.statuses.get(sid, "in-progress"), "", "")

    def kinds(self) -> list[str]:
        return [a[0] for a in self.actions]


class FakeLink:
    """A ready Palabra link: records fed audio; tests push events or make it fail."""

    def __init__(self, direction: Direction, settings: TaskSettings) -> None:
        self.direction = direction
        self.settings = settings
        self.updates: list[TaskSettings] = []  # every update_task, in order
        self.fed_samples = 0
        self._send, self.events = trio.open_memory_channel[Any](100)
        self.failure = trio.Event()
        self.closed = False
        self.stats = LinkStats(connects=1)
        self.end_deadline = float("inf")  # what ``end_by`` asked for
        self.goodbye_scope: trio.CancelScope | None = None

    def end_by(self, deadline: float) -> None:
        self.end_deadline = min(self.end_deadline, deadline)
        if self.goodbye_scope is not None:
            self.goodbye_scope.deadline = min(self.goodbye_scope.deadline, deadline)

    def feed(self, pcm24: NDArray[np.int16]) -> bool:
        self.fed_samples += len(pcm24)
        return True

    async def update_task(self, settings: TaskSettings) -> None:
        """As ``PalabraLink.update_task``: the new task runs after Palabra's 2 s rate limit."""
        await trio.sleep(self.update_delay)
        self.settings = settings
        self.updates.append(settings)

    update_delay = 0.0

    def detect(self, language: str) -> None:
        """Palabra reports the speaker's language (the task's source was ``auto``)."""
        self._send.send_nowait(LanguageDetected(language, "t1", trio.current_time()))

    def speak(self, utterance_id: str, freq_hz: float, seconds: float, language: str) -> None:
        """Emit a translation: transcripts, then 200 ms chunks of a tone at 24 kHz."""
        now = trio.current_time()
        self._send.send_nowait(Transcript("final", utterance_id, "source text", "en", now))
        self._send.send_nowait(
            Transcript("translation", utterance_id, "translated text", language, now)
        )
        tone = sine(freq_hz, seconds, 24000, 0.5)
        chunks = np.array_split(tone, max(1, round(seconds / 0.2)))
        for i, chunk in enumerate(chunks):
            self._send.send_nowait(
                SpeechChunk(utterance_id, language, chunk, i == len(chunks) - 1, now)
            )


@attrs.define
class FakeLinks:
    """The LinkOpener: opens FakeLinks (after ``ready_delay`` s), or fails to open on request."""

    ready_delay: float = 0.5
    fail_open: bool = False
    goodbye_s: float = 0.0  # a slow Palabra: the shielded goodbye takes this long (or end_by)
    opened: dict[Direction, FakeLink] = attrs.Factory(dict)  # the last link of each direction
    history: list[FakeLink] = attrs.Factory(list)  # every link opened, in order
    all_closed: bool = True

    @asynccontextmanager
    async def __call__(
        self, direction: Direction, settings: TaskSettings
    ) -> AsyncIterator[FakeLink]:
        await trio.sleep(self.ready_delay)
        if self.fail_open:
            msg = "palabra down"
            raise PalabraUnavailable(msg)
        link = FakeLink(direction, settings)
        self.opened[direction] = link
        self.history.append(link)
        async with trio.open_nursery() as nursery:

            async def fail_on_request() -> None:
                await link.failure.wait()
                msg = "link dropped past the reconnect budget"
                raise PalabraUnavailable(msg)

            nursery.start_soon(fail_on_request)
            try:
                yield link
            finally:
                deadline = min(trio.current_time() + self.goodbye_s, link.end_deadline)
                with trio.CancelScope(shield=True, deadline=deadline) as scope:
                    link.goodbye_scope = scope
                    await trio.sleep_forever()
                link.closed = True
                nursery.cancel_scope.cancel()


@attrs.define
class FakeSink:
    events: list[Any] = attrs.Factory(list)
    records: list[dict[str, Any]] = attrs.Factory(list)

    def publish(self, event: Any) -> None:
        self.events.append(event)

    def call_updated(self, record: CallRecord) -> None:
        self.records.append(record.snapshot())


def twilio_side() -> tuple[trio.MemorySendChannel[str | bytes], Inbound]:
    """A media socket in memory: the send end plays Twilio, the ``Inbound`` goes to the call."""
    send, receive = trio.open_memory_channel[str | bytes](64)
    return send, channel_inbound(receive)


class FakePhone:
    """The Twilio side of one media leg: sends connected/start/media, collects what we play."""

    def __init__(
        self,
        leg: MediaLeg,
        socket_in: trio.MemorySendChannel[str | bytes],
        call_sid: str,
        freq_hz: float | None,
    ) -> None:
        self.leg = leg
        self.socket_in = socket_in
        self.call_sid = call_sid
        self.stream_sid = "MZ" + call_sid[2:]
        self.freq_hz = freq_hz
        self.sequence = itertools.count(1)
        self.heard: list[NDArray[np.int16]] = []
        self.heard_at: list[float] = []  # when each heard frame arrived
        self.spoke_at: list[float] = []  # when each frame of the tone was sent
        self.received: list[str] = []  # event names in the order callbridge sent them
        self.marks: list[str] = []
        self.received_closed = trio.Event()
        self.speaking = False
        self.muted = False
        self.held_until = 0.0  # frames made before this are held back and then sent at once
        self.phase_s = 0.0  # how long after ``stream`` starts the first frame is made
        self.streaming_since = 0.0  # when the first media frame was made
        # Twilio's playout buffer, modelled only by how late marks come back: the network and
        # tick phase (``echo_delay_s``) plus audio standing in the buffer (``backlog_s``).
        self.echo_delay_s = 0.0
        self.backlog_s = 0.0
        self._due: list[tuple[float, dict[str, Any]]] = []
        self.clears = 0

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if self.received_closed.is_set():  # the daemon closed the socket, as a server would
            raise trio.BrokenResourceError
        data = orjson.dumps(message).decode() if isinstance(message, dict) else message
        await self.socket_in.send(data)

    async def start(self) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": str(next(self.sequence)),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": "AC" + "0" * 32,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": {},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    async def stream(self) -> None:
        """Send a 20 ms media frame every 20 ms (virtual) time, as Twilio does, until the call ends:
        a tone while ``speaking``, silence otherwise, nothing while ``muted``; frames made before
        ``held_until`` are held back and then delivered at once, as after a network stall."""
        tone = sine(self.freq_hz or 440.0, 1.0, 8000, 0.3)
        silence = np.zeros(160, np.int16)
        start = self.streaming_since = trio.current_time() + self.phase_s
        held: list[dict[str, Any]] = []
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            for i in itertools.count():
                await trio.sleep_until(start + i * 0.02)
                if self.muted:
                    continue
                at = (i * 160) % (len(tone) - 160)
                pcm = tone[at : at + 160] if self.speaking else silence
                if self.speaking:
                    self.spoke_at.append(trio.current_time())
                payload = base64.b64encode(ulaw_encode(pcm)).decode()
                held.append(
                    {
                        "event": "media",
                        "sequenceNumber": str(next(self.sequence)),
                        "streamSid": self.stream_sid,
                        "media": {
                            "track": "inbound",
                            "chunk": str(i + 1),
                            "timestamp": str(i * 20),
                            "payload": payload,
                        },
                    }
                )
                if trio.current_time() < self.held_until:
                    continue
                for message in held:
                    await self.send(message)
                held.clear()

    async def talk(self, seconds: float) -> None:
        self.speaking = True
        await trio.sleep(seconds)
        self.speaking = False

    async def press(self, keys: str) -> None:
        """The party presses ``keys``: one ``dtmf`` message each, as Twilio sends them."""
        for key in keys:
            await self.send(
                {
                    "event": "dtmf",
                    "streamSid": self.stream_sid,
                    "sequenceNumber": str(next(self.sequence)),
                    "dtmf": {"track": "inbound_track", "digit": key},
                }
            )

    async def stop(self) -> None:
        await self.send(
            {
                "event": "stop",
                "sequenceNumber": str(next(self.sequence)),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid},
            }
        )

    async def listen(self) -> None:
        """Collect everything callbridge plays; echo marks after ``echo_delay_s`` (how long
        Twilio's playout buffer holds them), at once on ``clear``."""
        async for message in self.leg.socket_out:
            body = orjson.loads(message)
            self.received.append(body["event"])
            if body["event"] == "media":
                self.heard.append(ulaw_decode(base64.b64decode(body["media"]["payload"])))
                self.heard_at.append(trio.current_time())
            elif body["event"] == "mark" and not self.muted:
                self.marks.append(body["mark"]["name"])
                due = trio.current_time() + self.echo_delay_s + self.backlog_s
                self._due.append((due, body["mark"]))
                await self._echo_due(trio.current_time())
            elif body["event"] == "clear":
                self.clears += 1
                self.backlog_s = 0.0  # the buffer is empty
                await self._echo_due(float("inf"))  # a clear echoes every pending mark at once
        self.received_closed.set()

    async def _echo_due(self, now: float) -> None:
        due = [mark for at, mark in self._due if at <= now]
        self._due = [(at, mark) for at, mark in self._due if at > now]
        for mark in due:
            echo = {"event": "mark", "sequenceNumber": str(next(self.sequence)),
                    "streamSid": self.stream_sid, "mark": mark}  # fmt: skip
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.send(echo)

    async def echo_marks(self) -> None:
        """Echo delayed marks when they fall due (runs beside ``listen``)."""
        while not self.received_closed.is_set():
            await trio.sleep(0.005)
            await self._echo_due(trio.current_time())

    def heard_pcm(self) -> NDArray[np.int16]:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, np.int16)


def role_freq(role: Role) -> float:
    return 500.0 if role is Role.CALLER else 800.0
