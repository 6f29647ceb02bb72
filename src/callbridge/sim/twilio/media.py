"""One ``<Connect><Stream>``: the fake Twilio's side of a bidirectional Media Streams WebSocket.

Twilio is the WebSocket *client*: it dials the stream URL (signed upgrade), sends ``connected``
and ``start``, then one inbound ``media`` frame every 20 ms on an absolute deadline schedule
(real time), while a playback buffer plays what the app sends back at 8 bytes/ms and echoes marks.
Keys the party presses go out as ``dtmf`` events (``keypad.py``). The 20 ms ticks and the socket reads of every stream are served by the simulator's one media
task (:class:`~callbridge.sim.twilio.engine.MediaEngine`), and sends never wait
(:mod:`callbridge.sim.twilio.wsclient`), so one process drives many streams.

Resource handling: :meth:`StreamSession.run` owns the socket; it returns when the app closed the
socket (``"app_closed"``), when the upgrade failed (``"rejected"``), or after
:meth:`request_stop` (``"stopped"``: ``stop`` sent, then a close handshake; or ``"aborted"`` for
the abrupt-close fault: no ``stop``, TCP dropped).

Error handling: protocol errors from the app are recorded as Twilio warnings (31950 binary frame,
31951 malformed message, 31931 buffer over 10 minutes) and never end the stream.

Layering: a stream sees its call only as a :class:`StreamCall` and is handed the simulator's
parts (signer, media engine, scripted keys) when it is made, so this module imports neither
``calls`` nor ``sim``; its reports are read from above (:mod:`callbridge.sim.twilio.stream_report`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import time
import urllib.parse
from collections import Counter
from typing import Any, Protocol

import attrs
import orjson
import trio

from callbridge.log import get_logger
from callbridge.sim.twilio.audio import FRAME_S, Party, PlaybackBuffer, Voice
from callbridge.sim.twilio.engine import MediaEngine
from callbridge.sim.twilio.keypad import Keypad
from callbridge.sim.twilio.meters import JitterMeter, LatenessMeter, ToneOnsets
from callbridge.sim.twilio.scenario import DtmfSpec, Fault
from callbridge.sim.twilio.twiml import Stream
from callbridge.sim.twilio.webhooks import Signer
from callbridge.sim.twilio.wsclient import (
    MediaSocket,
    WsHandshakeError,
    WsRejected,
    connect_websocket,
)

__all__ = ["StreamCall", "StreamSession", "new_stream_sid"]

log = get_logger("callbridge.sim.twilio.media")

STALL_S = FRAME_S / 2  # a tick this late was the simulator's own stall, not the app's

WARNINGS = {
    31931: "Media Discarded: more than 10 minutes buffered",
    31950: "Do not use binary format",
    31951: "Stream - Protocol - Malformed Message",
}
ALLOWED = {
    "media": ({"event", "streamSid", "media"}, "media", {"payload"}),
    "mark": ({"event", "streamSid", "mark"}, "mark", {"name"}),
    "clear": ({"event", "streamSid"}, None, set()),
}


def new_stream_sid() -> str:
    return "MZ" + secrets.token_hex(16)


class StreamCall(Protocol):
    """What a stream needs from its call (:class:`callbridge.sim.twilio.calls.Call`): the SIDs
    its ``start`` and ``stop`` messages carry, and where to report it went live."""

    @property
    def sid(self) -> str: ...

    @property
    def account_sid(self) -> str: ...

    def stream_event(self, session: StreamSession, event: str, error: str = "") -> None:
        """The ``<Stream statusCallback>`` request for ``event`` (e.g. ``stream-started``)."""


@attrs.define(eq=False)
class StreamSession:
    call: StreamCall
    party: Party
    spec: Stream
    url: str  # query string already stripped, as Twilio does
    voice: Voice
    faults: list[Fault]
    signer: Signer  # signs the WebSocket upgrade (and applies the signature faults)
    engine: MediaEngine  # the simulator's one media task: ticks and reads
    dtmf: tuple[DtmfSpec, ...] = ()  # the scenario's scripted key presses
    stop_timeout_s: float = 2.0
    connect_timeout_s: float = 10.0
    stream_sid: str = attrs.field(factory=new_stream_sid)
    buffer: PlaybackBuffer = attrs.field(factory=PlaybackBuffer)
    done: trio.Event = attrs.field(factory=trio.Event)
    onsets: ToneOnsets | None = None  # tone onsets heard (load tests), see meters.py
    # report
    started_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    signed: bool = False
    error: int | None = None
    messages_in: Counter[str] = attrs.field(factory=Counter)
    messages_out: Counter[str] = attrs.field(factory=Counter)
    marks: list[dict[str, Any]] = attrs.field(factory=list)
    clears: list[dict[str, Any]] = attrs.field(factory=list)
    warnings: list[dict[str, Any]] = attrs.field(factory=list)
    fault_log: list[dict[str, Any]] = attrs.field(factory=list)
    underrun_frames: int = 0
    underrun_events: int = 0
    late_ticks: int = 0  # ticks this simulator itself ran over half a frame late
    underrun_frames_while_late: int = 0  # not counted in underrun_frames / underrun_runs
    longest_underrun_ms: int = 0
    bytes_received: int = 0
    lateness: LatenessMeter = attrs.field(factory=LatenessMeter)  # see meters.py
    jitter: JitterMeter = attrs.field(factory=JitterMeter)
    said_onsets: list[float] = attrs.field(factory=list)  # wall clock: a tone burst began
    phase_ms: float | None = None  # this stream's tick phase within the 20 ms period
    reported_ended: bool = False  # its last window_stats were taken after it ended
    window_base: dict[str, int] = attrs.field(factory=dict)  # counters at the window's start
    # state
    _ws: MediaSocket | None = None
    _chunk: int = 0
    _seq: int = 0
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _app_closed: trio.Event = attrs.field(factory=trio.Event)
    _stop_kind: str = "stopped"
    _warned: set[int] = attrs.field(factory=set)
    _run_len: int = 0
    keypad: Keypad | None = None
    _faults_nursery: trio.Nursery | None = None  # while live: where faults fire
    # Every underrun run as [wall-clock start, length in ms], so tests can look at a time window
    # (e.g. only while the call is bridged) rather than at whole-stream totals.
    underrun_runs: list[list[float]] = attrs.Factory(list)

    def press_keys(self, spec: DtmfSpec) -> bool:
        """Press keys now (``dtmf`` events); False when the stream is not live."""
        return self.keypad is not None and self.keypad.press(spec)

    def request_stop(self, kind: str = "stopped") -> None:
        """End the stream from the Twilio side: ``stopped`` (stop + close) or ``aborted``."""
        if not self._stop.is_set():
            self._stop_kind = kind
            self._stop.set()

    async def run(self) -> str:
        try:
            return await self._run()
        finally:
            self.ended_at = time.time()
            self.done.set()

    async def _run(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        host, port = (
            parts.hostname or "127.0.0.1",
            parts.port or (443 if parts.scheme == "wss" else 80),
        )
        headers = self.signer.websocket_headers(self.url)
        self.signed = bool(headers)
        try:
            with trio.fail_after(self.connect_timeout_s):
                self._ws = await connect_websocket(host, port, parts.path or "/", headers)
        except WsRejected as exc:
            return self._handshake_failed(31920, repr(exc))
        except trio.TooSlowError:
            return self._handshake_failed(31901, "connect timeout")
        except (OSError, WsHandshakeError) as exc:
            return self._handshake_failed(31902, repr(exc))
        try:
            self.end_reason = await self._converse(self._ws)
        finally:
            self._ws.abort()
        return self.end_reason

    def _handshake_failed(self, code: int, detail: str) -> str:
        self.error = code
        self.warnings.append({"code": code, "detail": detail, "at": time.time()})
        log.warning("stream_handshake_failed", code=code, url=self.url, detail=detail)
        self.end_reason = "rejected"
        return "rejected"

    async def _converse(self, ws: MediaSocket) -> str:
        self.started_at = time.time()
        self.party.stream_started_at = trio.current_time()
        self.party.stream_live.set()
        self.call.stream_event(self, "stream-started")
        self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, seq=False)
        self._send({"event": "start", "start": self._start_body()})
        engine = self.engine
        try:
            async with trio.open_nursery() as inner:
                inner.start_soon(ws.flush_outbox)
                inner.start_soon(self._fault_runner, ws, inner)
                self.keypad = Keypad(self.party, self.dtmf)
                inner.start_soon(self.keypad.run, self._send)
                inner.start_soon(_wait_either, self._stop, self._app_closed, inner.cancel_scope)
                ws.start(engine, self._handle, self._app_closed.set)
                first_tick = engine.add(self)
                self.phase_ms = round(first_tick * 1000 % (FRAME_S * 1000), 3)
        finally:
            self._faults_nursery = None
            engine.remove(self)
        if self._app_closed.is_set() and not self._stop.is_set():
            return "app_closed"
        if self._stop_kind == "aborted":
            ws.abort()
            return "aborted"
        stop = {"accountSid": self.call.account_sid, "callSid": self.call.sid}
        self._send({"event": "stop", "stop": stop})
        with trio.move_on_after(self.stop_timeout_s):
            async with trio.open_nursery() as closing:
                closing.start_soon(ws.flush_outbox)
                await ws.aclose()
                closing.cancel_scope.cancel()
        return "stopped"

    def _start_body(self) -> dict[str, Any]:
        return {
            "accountSid": self.call.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call.sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": dict(self.spec.parameters),
        }

    def _send(self, message: dict[str, Any], *, seq: bool = True) -> None:
        assert self._ws is not None
        if seq:
            self._seq += 1
            message = {"event": message["event"], "sequenceNumber": str(self._seq)} | message
            message["streamSid"] = self.stream_sid
        if self._ws.send_text(orjson.dumps(message).decode()):
            self.messages_out[message["event"]] += 1

    # ---- the 20 ms tick (called by the simulator's MediaEngine) -----------------------------

    def tick(self, deadline: float, now: float) -> bool:
        """Send the frame due at ``deadline`` and play one from the buffer; False once closed."""
        ws = self._ws
        if ws is None or self._stop.is_set():
            return False
        if ws.closed:  # the app closed it (the reader may be paused by a fault and not know)
            self._app_closed.set()
            return False
        chunk = self._chunk
        self._chunk += 1
        frame = self.voice.next_frame()
        if getattr(self.voice, "burst_started", False):
            self.said_onsets.append(time.time())
        media = {
            "track": "inbound",
            "chunk": str(chunk + 1),
            "timestamp": str(chunk * 20),
            "payload": base64.b64encode(frame).decode(),
        }
        self._send({"event": "media", "media": media})
        self.party.record_said(frame)
        self._play_tick(deadline, stalled=now - deadline > STALL_S)
        return True

    def _play_tick(self, deadline: float, *, stalled: bool) -> None:
        tick = self.buffer.tick()
        self.party.record_heard(tick.frame)
        if self.onsets is not None:
            self.onsets.frame(tick.pcm(), time.time())
        if stalled:
            # This simulator woke late (a busy machine): the app cannot have answered frames it
            # was not sent yet, so an empty buffer now is not the app's underrun.
            self.late_ticks += 1
            self.underrun_frames_while_late += tick.underrun
            self._run_len = 0
        elif tick.underrun:
            self.lateness.ran_dry(deadline)
            if self._run_len == 0:
                self.underrun_events += 1
                self.underrun_runs.append([time.time(), 0])
            self._run_len += 1
            self.underrun_frames += 1
            self.underrun_runs[-1][1] = self._run_len * 20
            self.longest_underrun_ms = max(self.longest_underrun_ms, self._run_len * 20)
        else:
            self._run_len = 0
        for name in tick.marks:
            self._echo_mark(name, cleared=False)

    def _echo_mark(self, name: str, *, cleared: bool) -> None:
        for mark in self.marks:
            if mark["name"] == name and mark["echoed_at"] is None:
                mark["echoed_at"] = time.time()
                mark["cleared"] = cleared
                break
        self._send({"event": "mark", "mark": {"name": name}})

    # ---- what the app sends (each whole message, from the MediaEngine) -----------------------

    def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.messages_in["binary"] += 1
            self._warn(31950, "binary frame")
            return
        try:
            data = orjson.loads(message)
        except ValueError:
            self.messages_in["invalid"] += 1
            self._warn(31951, "not JSON")
            return
        event = data.get("event") if isinstance(data, dict) else None
        self.messages_in[str(event)] += 1
        problem = self._validate(data, event)
        if problem:
            self._warn(31951, problem)
            return
        if event == "media":
            self._on_media(data["media"]["payload"])
        elif event == "mark":
            name = data["mark"]["name"]
            self.marks.append(
                {"name": name, "sent_at": time.time(), "echoed_at": None, "cleared": False}
            )
            if self.buffer.add_mark(name):
                self._echo_mark(name, cleared=False)
        else:
            marks, dropped = self.buffer.clear()
            self.clears.append({"at": time.time(), "cleared_ms": dropped // 8, "marks": marks})
            for name in marks:
                self._echo_mark(name, cleared=True)

    def _validate(self, data: Any, event: Any) -> str | None:
        if event not in ALLOWED:
            return f"unknown event {event!r}"
        top, inner_key, inner = ALLOWED[event]
        if set(data) != top:
            return f"{event}: fields {sorted(data)} != {sorted(top)}"
        if data["streamSid"] != self.stream_sid:
            return f"{event}: wrong streamSid"
        if inner_key is not None:
            body = data[inner_key]
            if (
                not isinstance(body, dict)
                or set(body) != inner
                or not all(isinstance(body[k], str) for k in inner)
            ):
                return f"{event}: {inner_key} must be {{{', '.join(sorted(inner))}}} of strings"
        return None

    def _on_media(self, payload: str) -> None:
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._warn(31951, "media payload is not base64")
            return
        # Any byte string is valid mu-law, so the length is all there is to check.
        self.bytes_received += len(audio)
        if audio:
            now = trio.current_time()
            self.lateness.media(now)
            self.jitter.media(now, len(audio))
        if not self.buffer.add_media(audio):
            self._warn(31931, "buffer over 10 minutes")

    def _warn(self, code: int, detail: str) -> None:
        # Twilio raises each warning once per stream; the report keeps every occurrence counted.
        first = code not in self._warned
        self._warned.add(code)
        self.warnings.append({"code": code, "detail": detail, "at": time.time(), "first": first})
        if first:
            log.warning("stream_warning", code=code, message=WARNINGS.get(code, ""), detail=detail)

    def inject(self, fault: Fault) -> bool:
        """Fire ``fault`` on this live stream ``fault.at_s`` from now; False when the stream is
        not live (not started yet, or over)."""
        if self._faults_nursery is None or self._ws is None or self._stop.is_set():
            return False
        self._faults_nursery.start_soon(self._fire_at, self._ws, fault, trio.current_time())
        return True

    async def _fault_runner(self, ws: MediaSocket, nursery: trio.Nursery) -> None:
        mine = [
            f
            for f in self.faults
            if f.applies_to(self.party.name, self.call.sid) and not f.on_hangup
        ]
        origin = trio.current_time()
        for fault in mine:
            nursery.start_soon(self._fire_at, ws, fault, origin)
        self._faults_nursery = nursery  # runtime faults aimed at this call (``inject``)

    async def _fire_at(self, ws: MediaSocket, fault: Fault, origin: float) -> None:
        await trio.sleep_until(origin + fault.at_s)
        self.fault_log.append({"kind": fault.kind, "at": time.time()})
        log.info("stream_fault", kind=fault.kind, stream_sid=self.stream_sid)
        if fault.kind == "abrupt_close":
            # The call then ends without a stop message (the interpreter sees "aborted").
            self.request_stop("aborted")
        elif fault.kind == "binary_frame":
            ws.send_bytes(b"\x00\x01binary")
        elif fault.kind == "malformed_json":
            ws.send_text('{"event": "media", "sequenceNumber": ')
        elif fault.kind == "oversized_frame":
            # Valid JSON of a media message, padded far past anything Twilio sends.
            head = '{"event": "media", "streamSid": "' + self.stream_sid + '", "pad": "'
            ws.send_text(head + "x" * max(fault.size_bytes - len(head) - 2, 0) + '"}')
        elif fault.kind == "slow_reader":
            ws.pause_reading()
            await trio.sleep(fault.duration_s)
            ws.resume_reading()


async def _wait_either(a: trio.Event, b: trio.Event, scope: trio.CancelScope) -> None:
    async with trio.open_nursery() as nursery:
        for event in (a, b):
            nursery.start_soon(_set_then_cancel, event, nursery.cancel_scope)
    scope.cancel()


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
