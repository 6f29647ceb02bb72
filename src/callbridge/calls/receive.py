"""``LegReceiver``: the Twilio receive task of one leg.

Each message from Twilio is parsed (``telephony.media_stream.parse``) and counted, then:

- ``media``: decoded from mu-law; once the call is bridged, handed to the other party's output
  (the original they hear) and to this party's translator (nothing before the bridge: nobody is
  there to hear it, and the translators get silence keepalive meanwhile);
- ``mark``: an echo of a mark we sent this party, for this party's output;
- ``start``: this party's stream is up (its id is needed to send anything);
- ``stop``, or the socket closing: this party hung up, which ends the call;
- ``dtmf``: logged, and handed to ``on_key`` (the caller's: ``*`` then a digit switches language);
- invalid messages: counted by reason, the first of each reason per leg logged.

Error handling: raises ``CallEnded`` (``<role>_hangup``, or ``leg_timeout`` when nothing valid
came for ``media.leg_idle_timeout_s``), which ends the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from callbridge.audio import Pcm, ulaw_decode
from callbridge.calls.output import ListenerOutput
from callbridge.errors import CallEnded
from callbridge.log import get_logger
from callbridge.records import EndReason
from callbridge.telephony.legs import MediaLeg
from callbridge.telephony.media_stats import MediaStats
from callbridge.telephony.media_stream import (
    Dtmf,
    Event,
    Invalid,
    Mark,
    Media,
    Start,
    Stop,
    parse,
)

__all__ = ["LegReceiver", "SpeechInput"]

log = get_logger("callbridge.receive")


class SpeechInput(Protocol):
    """Where a speaker's audio goes besides the other party's ear (``translate.Translator``)."""

    def feed(self, pcm8: Pcm) -> None: ...


class LegReceiver:
    """One leg's inbound messages; ``run`` is its task (see the module docstring)."""

    def __init__(
        self,
        leg: MediaLeg,
        *,
        own_output: ListenerOutput,
        other_output: ListenerOutput,
        translator: SpeechInput | None,
        bridged: trio.Event,
        idle_s: float,
        on_key: Callable[[str], None] | None = None,
    ) -> None:
        self.role = leg.role
        self.stats: MediaStats = own_output.stats
        self._leg = leg
        self._own = own_output
        self._other = other_output
        self._translator = translator
        self._bridged = bridged
        self._idle_s = idle_s
        self._on_key = on_key
        self._invalid_logged: set[str] = set()

    async def run(self) -> None:
        """Receive until Twilio stops the leg; ends the call on hang-up or silence."""
        last_valid = trio.current_time()
        while True:
            with trio.move_on_at(last_valid + self._idle_s):
                try:
                    message = await self._leg.inbound.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    raise CallEnded(EndReason.hangup(self.role), "media socket closed") from None
                event = parse(message)
                self.stats.record(event)
                if isinstance(event, Invalid):
                    self._log_invalid(event)
                    continue
                last_valid = trio.current_time()
                self._handle(event)
                continue
            detail = f"no valid media from the {self.role} for {self._idle_s} s"
            raise CallEnded(EndReason.LEG_TIMEOUT, detail)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Media):
            self._on_speech(event.payload)
        elif isinstance(event, Mark):
            self._own.on_mark(event.name)
        elif isinstance(event, Start):
            self._own.stream_started(event.stream_sid)
            log.info(
                "media_started",
                role=str(self.role),
                stream_sid=event.stream_sid,
                call_sid=event.call_sid,
            )
        elif isinstance(event, Stop):
            raise CallEnded(EndReason.hangup(self.role), "media stream stopped")
        elif isinstance(event, Dtmf):
            log.info("dtmf", role=str(self.role), digit=event.digit)
            if self._on_key is not None:
                self._on_key(event.digit)  # never blocks: a task update runs elsewhere

    def _on_speech(self, payload: bytes) -> None:
        if not self._bridged.is_set():
            return
        pcm8 = ulaw_decode(payload)
        self._other.on_original(pcm8)
        if self._translator is not None:
            self._translator.feed(pcm8)

    def _log_invalid(self, event: Invalid) -> None:
        # First of each kind per leg is a warning; the rest are counted in the summary line.
        if event.reason not in self._invalid_logged:
            self._invalid_logged.add(event.reason)
            log.warning(
                "media_invalid",
                role=str(self.role),
                reason=event.reason,
                detail=event.detail,
                size=event.raw_size,
            )
