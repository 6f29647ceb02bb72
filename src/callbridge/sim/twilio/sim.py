"""The fake Twilio's state: calls, parties, streams, fault switches, and the JSON report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from callbridge.log import get_logger
from callbridge.sim.twilio.audio import Party, QueueVoice, SilenceVoice, Voice
from callbridge.sim.twilio.calls import Call, new_call_sid
from callbridge.sim.twilio.conversation import Conversation
from callbridge.sim.twilio.engine import MediaEngine
from callbridge.sim.twilio.media import StreamSession
from callbridge.sim.twilio.meters import MsHistogram, ToneOnsets
from callbridge.sim.twilio.scenario import (
    CallbackOptions,
    CallerSpec,
    DtmfSpec,
    Fault,
    OperatorSpec,
    RestDelay,
    RestError,
    Scenario,
)
from callbridge.sim.twilio.stream_report import stream_report, stream_window
from callbridge.sim.twilio.tone_voice import ToneVoice
from callbridge.sim.twilio.twiml import Stream
from callbridge.sim.twilio.webhooks import CallbackDispatcher, Signer, WebhookClient

__all__ = ["TONE_HZ", "SimOptions", "TwilioSim"]

log = get_logger("callbridge.sim.twilio")

TONE_HZ = {"caller": 500.0, "operator": 800.0}


@attrs.frozen
class SimOptions:
    app_url: str  # the app under test, e.g. http://127.0.0.1:8000
    account_sid: str
    auth_token: str
    scenario: Scenario = attrs.field(factory=Scenario)
    host: str = "127.0.0.1"
    port: int = 0
    out_dir: Path | None = None  # write {party}-heard.wav / -said.wav here at exit
    # Load tests: keep no per-frame recordings (memory grows with every frame otherwise) ...
    recording: bool = True
    # ... and time the onsets of these tone frequencies (Hz) in what each stream plays.
    detect_tones: tuple[float, ...] = ()


@attrs.define(eq=False)
class TwilioSim:
    options: SimOptions
    nursery: trio.Nursery
    http: httpx.AsyncClient
    signer: Signer
    webhooks: WebhookClient
    conversation: Conversation | None = None
    url: str = ""
    calls: dict[str, Call] = attrs.field(factory=dict)
    parties: dict[str, Party] = attrs.field(factory=dict)
    streams: list[StreamSession] = attrs.field(factory=list)
    rest_log: list[dict[str, Any]] = attrs.field(factory=list)
    rest_errors: list[list[Any]] = attrs.field(factory=list)  # [RestError, remaining]
    rest_delays: list[list[Any]] = attrs.field(factory=list)  # [RestDelay, remaining]
    shutdown_requested: trio.Event = attrs.field(factory=trio.Event)
    first_call: trio.Event = attrs.field(factory=trio.Event)
    started_at: float = attrs.field(factory=time.time)
    engine: MediaEngine = attrs.field(factory=MediaEngine)  # every stream's ticks and reads
    # For calls created from now on: the scenario's, or what POST /_sim/faults set since.
    callback_options: CallbackOptions = attrs.field()

    default_operator: OperatorSpec = attrs.field()

    @callback_options.default
    def _scenario_callbacks(self) -> CallbackOptions:
        return self.options.scenario.callbacks

    @default_operator.default
    def _scenario_default_operator(self) -> OperatorSpec:
        return self.options.scenario.default_operator

    @property
    def scenario(self) -> Scenario:
        return self.options.scenario

    @property
    def app_url(self) -> str:
        """The app under test (a call may name its own: :attr:`Call.app_url`)."""
        return self.options.app_url

    @property
    def faults(self) -> list[Fault]:
        return self.signer.faults

    def add_faults(self, faults: list[Fault]) -> int:
        """Arm ``faults``; returns how many fired on a live stream at once rather than waiting
        for streams to start: a stream fault aimed at a call (``call_sid``) whose stream is live
        now fires on that stream ``at_s`` from now, and only there."""
        injected = 0
        for fault in faults:
            call = self.calls.get(fault.call_sid) if fault.call_sid is not None else None
            stream = call.stream if call is not None else None
            if (
                stream is not None
                and not fault.on_hangup
                and fault.applies_to(stream.party.name, stream.call.sid)
                and stream.inject(fault)
            ):
                injected += 1
            else:
                self.signer.faults.append(fault)
        return injected

    def set_callbacks(self, options: CallbackOptions) -> None:
        """Callback duplication and reordering for calls created from now on."""
        self.callback_options = options

    def set_default_operator(self, spec: OperatorSpec) -> None:
        """How operators not named in the scenario answer calls created from now on."""
        self.default_operator = spec

    def operator_spec(self, number: str) -> OperatorSpec:
        return self.scenario.operators.get(number, self.default_operator)

    def add_rest_errors(self, errors: list[RestError]) -> None:
        self.rest_errors.extend([e, e.times] for e in errors)

    def take_rest_error(self, endpoint: str) -> RestError | None:
        for entry in self.rest_errors:
            err, remaining = entry
            if err.endpoint == endpoint and remaining > 0:
                entry[1] = remaining - 1
                return err  # type: ignore[no-any-return]
        return None

    def add_rest_delays(self, delays: list[RestDelay]) -> None:
        self.rest_delays.extend([d, d.times] for d in delays)

    def take_rest_delay(self, endpoint: str) -> float:
        """Seconds the answer to this request waits (after it took effect); 0 for none."""
        for entry in self.rest_delays:
            delay, remaining = entry
            if delay.endpoint == endpoint and remaining > 0:
                entry[1] = remaining - 1
                return float(delay.delay_s)
        return 0.0

    def party(self, name: str) -> Party:
        if name not in self.parties:
            # --no-recording (load tests) or the scenario's record_audio: false (soak runs).
            recording = self.options.recording and self.scenario.record_audio
            self.parties[name] = Party(name, recording=recording)
        return self.parties[name]

    def voice_for(self, party: Party, mode: str) -> Voice:
        if party.voice is not None:  # script mode: one voice per party across streams
            return party.voice
        if mode == "silence":
            return SilenceVoice()
        t = self.scenario.tone
        return ToneVoice(
            TONE_HZ.get(party.name, 650.0), t.on_s, t.off_s, t.start_delay_s, t.level_dbfs
        )

    def enable_script(self, conversation: Conversation) -> None:
        self.conversation = conversation
        for name in ("caller", "operator"):
            self.party(name).voice = QueueVoice()
        conversation.parties = self.parties

    # -- calls -------------------------------------------------------------------------------
    def _new_call(self, **kw: Any) -> Call:
        call = Call(sim=self, sid=new_call_sid(), account_sid=self.options.account_sid, **kw)
        cb = self.callback_options
        call.callbacks = CallbackDispatcher(
            self.webhooks, call.sid, duplicate=cb.duplicate, reorder=cb.reorder, hold_s=cb.hold_s
        )
        self.calls[call.sid] = call
        self.first_call.set()
        self.nursery.start_soon(call.callbacks.run)
        self.nursery.start_soon(call.run)
        return call

    def start_inbound_call(self, spec: CallerSpec | None = None) -> Call:
        spec = spec or self.scenario.caller
        log.info("inbound_call", from_=spec.from_, to=spec.to)
        return self._new_call(
            from_=spec.from_,
            to=spec.to,
            direction="inbound",
            party=self.party("caller"),
            status_callback=spec.status_callback,
            caller=spec,
        )

    def create_outbound_call(self, form: dict[str, Any]) -> Call:
        to = str(form["To"])
        events = frozenset(form.get("StatusCallbackEvent") or ["completed"])
        return self._new_call(
            from_=str(form["From"]),
            to=to,
            direction="outbound-api",
            party=self.party("operator"),
            status_callback=form.get("StatusCallback") or None,
            status_callback_method=str(form.get("StatusCallbackMethod") or "POST").upper(),
            events=events,
            url=form.get("Url") or None,
            url_method=str(form.get("Method") or "POST").upper(),
            twiml=None if form.get("Url") else form.get("Twiml"),
            timeout_s=float(form.get("Timeout") or 60),
            operator=self.operator_spec(to),
        )

    def new_stream(self, call: Call, spec: Stream, url: str) -> StreamSession:
        mode = (
            call.caller.voice if call.caller else (call.operator.voice if call.operator else "tone")
        )
        session = StreamSession(
            call=call,
            party=call.party,
            spec=spec,
            url=url,
            voice=self.voice_for(call.party, mode),
            faults=self.faults,
            signer=self.signer,
            engine=self.engine,
            dtmf=self.scenario.dtmf,
            stop_timeout_s=self.scenario.timing.stop_timeout_s,
            connect_timeout_s=self.scenario.timing.stream_connect_timeout_s,
            onsets=ToneOnsets(self.options.detect_tones) if self.options.detect_tones else None,
        )
        self.streams.append(session)
        return session

    def on_operator_ringing(self, outbound: Call) -> None:
        for call in self.live_calls():
            spec = call.caller
            if (
                call.direction == "inbound"
                and spec is not None
                and spec.hangup_while_operator_rings
            ):
                self.nursery.start_soon(_hangup_later, call, spec.hangup_ring_delay_s)

    def live_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if not c.ended.is_set()]

    def press_keys(self, party: str, digits: str, gap_s: float = 0.3) -> list[str]:
        """The party presses ``digits`` on every live stream of theirs (``dtmf`` events); returns
        the stream SIDs that sent them."""
        spec = DtmfSpec(digits, party=party, gap_s=gap_s)
        live = [s for s in self.streams if s.party.name == party and not s.done.is_set()]
        return [s.stream_sid for s in live if s.press_keys(spec)]

    async def hangup(self, *, party: str | None = None, call_sid: str | None = None) -> list[str]:
        targets = [
            c for c in self.live_calls()
            if (call_sid is None or c.sid == call_sid) and (party is None or c.party.name == party)
        ]  # fmt: skip
        for call in targets:
            await call.hangup(f"{call.party.name}_hangup")
        return [c.sid for c in targets]

    def idle(self) -> bool:
        return (
            bool(self.calls)
            and not self.live_calls()
            and all(c.callbacks is None or c.callbacks.done.is_set() for c in self.calls.values())
        )

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once at least one call happened and every call and callback has finished."""
        with trio.move_on_after(timeout_s):
            await self.first_call.wait()
            await self.drained()
            return True
        return False

    async def drained(self) -> None:
        """Wait until every call ended and its callbacks were delivered (re-checked, since a
        call may start another one, e.g. the app dialling the operator)."""
        while not self.idle() and self.calls:
            for call in list(self.calls.values()):
                await call.ended.wait()
                if call.callbacks is not None:
                    await call.callbacks.done.wait()

    async def end_all(self) -> None:
        for call in self.live_calls():
            await call.end("completed", reason="sim_shutdown")

    def window_stats(self) -> dict[str, Any]:
        """Load-test counters per stream since the previous call (see
        :func:`~callbridge.sim.twilio.stream_report.stream_window`), streams that ended meanwhile
        included once."""
        streams = [s for s in self.streams if s.started_at is not None and not s.reported_ended]
        lateness, jitter = MsHistogram(), MsHistogram()
        stats = []
        for s in streams:
            late, jittered = s.lateness.reset_window(), s.jitter.reset_window()
            lateness.merge(late)
            jitter.merge(jittered)
            stats.append(
                stream_window(s) | {"lateness": late.summary(), "jitter": jittered.summary()}
            )
            s.reported_ended = s.ended_at is not None
        return {
            "now": time.time(),
            "engine_wakeups": self.engine.wakeups,
            "lateness": lateness.summary(),
            "jitter": jitter.summary(),
            "streams": stats,
        }

    # -- output -------------------------------------------------------------------------------
    def write_wavs(self, directory: Path) -> list[str]:
        return [str(p) for party in self.parties.values() for p in party.write_wavs(directory)]

    def report(self) -> dict[str, Any]:
        return {
            "sim": "twilio",
            "url": self.url,
            "app_url": self.options.app_url,
            "started_at": self.started_at,
            "now": time.time(),
            "idle": self.idle(),
            "calls": [c.report() for c in self.calls.values()],
            "webhooks": self.webhooks.log,
            "rest": self.rest_log,
            "streams": [stream_report(s) for s in self.streams],
            "parties": {name: p.heard_summary() for name, p in self.parties.items()},
            "turns": self.conversation.log if self.conversation else [],
        }


async def _hangup_later(call: Call, delay: float) -> None:
    await trio.sleep(delay)
    await call.hangup("caller_hangup_while_operator_rings")
