"""One ``<Connect><Stream>``: the fake Twilio's side of a bidirectional Media Streams WebSocket.

Twilio is the WebSocket *client*: it dials the stream URL (signed upgrade), sends ``connected``
and ``start``, then one inbound ``media`` frame every 20 ms on an absolute deadline schedule
(real time), while a playback buffer plays what the app sends back at 8 bytes/ms and echoes marks.
Keys the party presses go out as ``dtmf`` events (``{"track": "inbound_track", "digit": "3"}``,
twilio-protocol reference §1.2): scripted by the scenario's ``dtmf`` list, or pressed at runtime
(``press_keys``, ``POST /_sim/dtmf``).

Resource handling: :meth:`StreamSession.run` owns the TCP stream and the WebSocket; it returns
when the app closed the socket (``"app_closed"``), when the upgrade failed (``"rejected"``), or
after :meth:`request_stop` (``"stopped"``: ``stop`` sent, then a close handshake; or ``"aborted"``
for the abrupt-close fault: no ``stop``, TCP dropped).

Error handling: protocol errors from the app are recorded as Twilio warnings (31950 binary frame,
31951 malformed message, 31931 buffer over 10 minutes) and never end the stream.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import time
import urllib.parse
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, wrap_client_stream

from callbridge.log import get_logger
from callbridge.sim.twilio.audio import FRAME_S, Party, PlaybackBuffer, Voice, ulaw_decode
from callbridge.sim.twilio.scenario import DtmfSpec, Fault
from callbridge.sim.twilio.twiml import Stream

if TYPE_CHECKING:
    from callbridge.sim.twilio.calls import Call

__all__ = ["StreamSession", "new_stream_sid"]

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


@attrs.define(eq=False)
class StreamSession:
    call: Call
    party: Party
    spec: Stream
    url: str  # query string already stripped, as Twilio does
    voice: Voice
    faults: list[Fault]
    stop_timeout_s: float = 2.0
    connect_timeout_s: float = 10.0
    stream_sid: str = attrs.field(factory=new_stream_sid)
    buffer: PlaybackBuffer = attrs.field(factory=PlaybackBuffer)
    done: trio.Event = attrs.field(factory=trio.Event)
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
    # state
    _seq: int = 0
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _stop_kind: str = "stopped"
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _read_paused_until: float = 0.0
    _read_scope: trio.CancelScope | None = None
    _warned: set[int] = attrs.field(factory=set)
    _run_len: int = 0
    # Every underrun run as [wall-clock start, length in ms], so tests can look at a time window
    # (e.g. only while the call is bridged) rather than at whole-stream totals.
    underrun_runs: list[list[float]] = attrs.Factory(list)
    dtmf_sent: list[dict[str, Any]] = attrs.Factory(list)
    _keys: trio.MemorySendChannel[DtmfSpec] | None = None

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
        resource = parts.path or "/"
        headers = self.call.sim.signer.websocket_headers(self.url)
        self.signed = bool(headers)
        result = "rejected"
        tcp: trio.SocketStream | None = None
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(self.connect_timeout_s):
                    tcp = await trio.open_tcp_stream(host, port)
                    ws = await wrap_client_stream(
                        nursery, tcp, f"{host}:{port}", resource, extra_headers=headers
                    )
                result = await self._converse(ws, tcp)
        except* ConnectionRejected as group:
            self._handshake_failed(31920, repr(group.exceptions[0]))
        except* trio.TooSlowError:
            self._handshake_failed(31901, "connect timeout")
        except* (OSError, HandshakeError) as group:
            self._handshake_failed(31902, repr(group.exceptions[0]))
        finally:
            if tcp is not None:  # trio-websocket leaves the stream open after a rejection
                await trio.aclose_forcefully(tcp)
        self.end_reason = result
        return result

    def _handshake_failed(self, code: int, detail: str) -> None:
        self.error = code
        self.warnings.append({"code": code, "detail": detail, "at": time.time()})
        log.warning("stream_handshake_failed", code=code, url=self.url, detail=detail)

    async def _converse(self, ws: Any, tcp: trio.abc.Stream) -> str:
        self.started_at = time.time()
        self.party.stream_started_at = trio.current_time()
        self.party.stream_live.set()
        self.call.stream_event(self, "stream-started")
        app_closed = trio.Event()
        async with trio.open_nursery() as inner:
            inner.start_soon(self._reader, ws, app_closed)
            inner.start_soon(self._ticker, ws, app_closed)
            inner.start_soon(self._fault_runner, ws, app_closed)
            inner.start_soon(self._keypad, ws)
            inner.start_soon(_wait_either, self._stop, app_closed, inner.cancel_scope)
        if app_closed.is_set() and not self._stop.is_set():
            return "app_closed"
        if self._stop_kind == "aborted":
            await trio.aclose_forcefully(tcp)
            return "aborted"
        with trio.move_on_after(self.stop_timeout_s) as scope:
            await self._send(
                ws,
                {
                    "event": "stop",
                    "stop": {"accountSid": self.call.account_sid, "callSid": self.call.sid},
                },
            )
            await ws.aclose()
        if scope.cancelled_caught:
            await trio.aclose_forcefully(tcp)
        return "stopped"

    async def _send(self, ws: Any, message: dict[str, Any], *, seq: bool = True) -> None:
        async with self._send_lock:
            if seq:
                self._seq += 1
                message = {"event": message["event"], "sequenceNumber": str(self._seq)} | message
                message["streamSid"] = self.stream_sid
            try:
                await ws.send_message(json.dumps(message))
            except ConnectionClosed:
                return
            self.messages_out[message["event"]] += 1

    async def _ticker(self, ws: Any, app_closed: trio.Event) -> None:
        await self._send(
            ws, {"event": "connected", "protocol": "Call", "version": "1.0.0"}, seq=False
        )
        start = {
            "accountSid": self.call.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call.sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": dict(self.spec.parameters),
        }
        await self._send(ws, {"event": "start", "start": start})
        origin = trio.current_time()
        chunk = 0
        while not ws.closed:
            # Absolute deadlines: a late wake-up sends the overdue frames at once (bunching,
            # like the network would) instead of drifting.
            deadline = origin + chunk * FRAME_S
            await trio.sleep_until(deadline)
            stalled = trio.current_time() - deadline > STALL_S
            frame = self.voice.next_frame()
            media = {
                "track": "inbound",
                "chunk": str(chunk + 1),
                "timestamp": str(chunk * 20),
                "payload": base64.b64encode(frame).decode(),
            }
            await self._send(ws, {"event": "media", "media": media})
            self.party.record_said(frame)
            await self._play_tick(ws, stalled=stalled)
            chunk += 1
        app_closed.set()

    async def _play_tick(self, ws: Any, *, stalled: bool) -> None:
        tick = self.buffer.tick()
        self.party.record_heard(tick.frame)
        if stalled:
            # This simulator woke late (a busy machine): the app cannot have answered frames it
            # was not sent yet, so an empty buffer now is not the app's underrun.
            self.late_ticks += 1
            self.underrun_frames_while_late += tick.underrun
            self._run_len = 0
        elif tick.underrun:
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
            await self._echo_mark(ws, name, cleared=False)

    async def _echo_mark(self, ws: Any, name: str, *, cleared: bool) -> None:
        for mark in self.marks:
            if mark["name"] == name and mark["echoed_at"] is None:
                mark["echoed_at"] = time.time()
                mark["cleared"] = cleared
                break
        await self._send(ws, {"event": "mark", "mark": {"name": name}})

    async def _reader(self, ws: Any, app_closed: trio.Event) -> None:
        while True:
            if self._read_paused_until > trio.current_time():
                await trio.sleep_until(self._read_paused_until)
                continue
            with trio.CancelScope() as scope:
                # The slow-reader fault cancels this wait, so the pause starts at once rather
                # than after the next message (get_message is cancel-safe).
                self._read_scope = scope
                try:
                    message = await ws.get_message()
                except ConnectionClosed:
                    app_closed.set()
                    return
            self._read_scope = None
            if not scope.cancelled_caught:
                await self._handle(ws, message)

    async def _handle(self, ws: Any, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.messages_in["binary"] += 1
            self._warn(31950, "binary frame")
            return
        try:
            data = json.loads(message)
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
                await self._echo_mark(ws, name, cleared=False)
        else:
            marks, dropped = self.buffer.clear()
            self.clears.append({"at": time.time(), "cleared_ms": dropped // 8, "marks": marks})
            for name in marks:
                await self._echo_mark(ws, name, cleared=True)

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
        ulaw_decode(audio)  # any byte string is valid mu-law; decoding proves the length is sane
        self.bytes_received += len(audio)
        if not self.buffer.add_media(audio):
            self._warn(31931, "buffer over 10 minutes")

    def _warn(self, code: int, detail: str) -> None:
        # Twilio raises each warning once per stream; the report keeps every occurrence counted.
        first = code not in self._warned
        self._warned.add(code)
        self.warnings.append({"code": code, "detail": detail, "at": time.time(), "first": first})
        if first:
            log.warning("stream_warning", code=code, message=WARNINGS.get(code, ""), detail=detail)

    async def _fault_runner(self, ws: Any, app_closed: trio.Event) -> None:
        mine = [
            f
            for f in self.faults
            if f.kind in ("abrupt_close", "binary_frame", "malformed_json", "slow_reader")
        ]
        mine = [f for f in mine if f.party in (None, self.party.name) and not f.on_hangup]
        origin = trio.current_time()
        for fault in sorted(mine, key=lambda f: f.at_s):
            await trio.sleep_until(origin + fault.at_s)
            self.fault_log.append({"kind": fault.kind, "at": time.time()})
            log.info("stream_fault", kind=fault.kind, stream_sid=self.stream_sid)
            if fault.kind == "abrupt_close":
                # The call then ends without a stop message (the interpreter sees "aborted").
                self.request_stop("aborted")
            elif fault.kind == "binary_frame":
                async with self._send_lock:
                    await ws.send_message(b"\x00\x01binary")
            elif fault.kind == "malformed_json":
                async with self._send_lock:
                    await ws.send_message('{"event": "media", "sequenceNumber": ')
            elif fault.kind == "slow_reader":
                self._read_paused_until = trio.current_time() + fault.duration_s
                if self._read_scope is not None:
                    self._read_scope.cancel()

    def press_keys(self, spec: DtmfSpec) -> bool:
        """Press ``spec.digits`` now (``at_s`` ignored); False when the stream is not live."""
        if self._keys is None:
            return False
        try:
            self._keys.send_nowait(spec)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    async def _keypad(self, ws: Any) -> None:
        """Send the scenario's keys for this party at their times, and runtime presses."""
        scripted = [d for d in self.call.sim.scenario.dtmf if d.party == self.party.name]
        send, receive = trio.open_memory_channel[DtmfSpec](16)
        self._keys = send
        origin = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                for spec in scripted:
                    nursery.start_soon(self._press, ws, spec, origin + spec.at_s)
                async for spec in receive:
                    nursery.start_soon(self._press, ws, spec, trio.current_time())
        finally:
            self._keys = None

    async def _press(self, ws: Any, spec: DtmfSpec, at: float) -> None:
        for index, digit in enumerate(spec.digits):
            await trio.sleep_until(at + index * spec.gap_s)
            self.dtmf_sent.append({"digit": digit, "at": time.time()})
            self.party.events.append({"kind": "dtmf", "digit": digit, "at": time.time()})
            await self._send(
                ws, {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}}
            )

    def report(self) -> dict[str, Any]:
        return {
            "stream_sid": self.stream_sid,
            "call_sid": self.call.sid,
            "party": self.party.name,
            "url": self.url,
            "signed": self.signed,
            "custom_parameters": dict(self.spec.parameters),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "error": self.error,
            "messages_in": dict(self.messages_in),
            "messages_out": dict(self.messages_out),
            "bytes_received": self.bytes_received,
            "marks": self.marks,
            "clears": self.clears,
            "warnings": self.warnings,
            "faults": self.fault_log,
            "dtmf_sent": self.dtmf_sent,
            "underrun_frames": self.underrun_frames,
            "late_ticks": self.late_ticks,
            "underrun_frames_while_late": self.underrun_frames_while_late,
            "underrun_events": self.underrun_events,
            "longest_underrun_ms": self.longest_underrun_ms,
            "underrun_runs": [list(run) for run in self.underrun_runs],
            "buffered_ms": self.buffer.buffered_bytes // 8,
        }


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
