"""``LegReceiver``: the Twilio receive task of one leg.

Each message from Twilio is parsed (``telephony.media_stream.parse``) and counted, then:

- ``media``: decoded from mu-law; once the call is bridged, handed to the other party's output
  (the original they hear) and to this party's translator (nothing before the bridge: nobody is
  there to hear it, and the translators get silence keepalive meanwhile);
- ``mark``: an echo of a mark we sent this party, for this party's output;
- ``start``: this party's stream is up (its id is needed to send anything);
- ``stop``: this party hung up, which ends the call;
- the socket ending without a ``stop`` (it broke) ends the call as ``media_lost``, and a message
  over ``MAX_MESSAGE_CHARS`` (nothing Twilio sends comes near it) as ``media_too_large``, at once;
- ``dtmf``: logged, and handed to ``on_key`` (the caller's: ``*`` then a digit switches language);
- invalid messages: counted by reason, the first of each reason per leg logged.

A quiet leg is not a hung-up leg: when nothing valid came for ``media.leg_idle_timeout_s``, the
receiver asks Twilio for the leg's call status (``LegStatus``, a bounded ``GET Calls/{sid}``).
Twilio reports it live: the call goes on (``leg_quiet`` logged, ``quiet_kept`` counted) and the
next window is twice as long, up to ``MAX_QUIET_WINDOW_S``, back to the configured one once valid
messages flow again. Twilio reports it over: that party hung up. No answer: ``leg_timeout``.

Error handling: raises ``CallEnded`` (``<role>_hangup``, ``media_lost``, ``media_too_large``, or
``leg_timeout`` when nothing valid came and Twilio could not say the leg is live), which ends the
call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import trio

from callbridge.audio import Pcm, ulaw_decode
from callbridge.calls.output import ListenerOutput
from callbridge.errors import CallEnded
from callbridge.log import get_logger
from callbridge.records import EndReason
from callbridge.roles import Role
from callbridge.telephony.legs import LegClosed, MediaLeg
from callbridge.telephony.media_stats import MediaStats
from callbridge.telephony.media_stream import (
    Dtmf,
    Event,
    Invalid,
    InvalidReason,
    Mark,
    Media,
    Start,
    Stop,
    parse,
)
from callbridge.telephony.status import TERMINAL_STATUSES

__all__ = ["MAX_QUIET_WINDOW_S", "LegReceiver", "LegStatus", "SpeechInput"]

log = get_logger("callbridge.receive")

# A quiet leg Twilio reports live is given twice the time before the next check, up to this.
MAX_QUIET_WINDOW_S: Final = 60.0

# Twilio's CallStatus for a leg's call ("in-progress", "completed", ...), or None when it
# could not be learnt.
LegStatus = Callable[[Role], Awaitable[str | None]]


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
        leg_status: LegStatus | None = None,
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
        self._leg_status = leg_status
        self._on_key = on_key
        self._invalid_logged: set[str] = set()
        self.quiet_kept = 0  # idle timeouts survived because Twilio reported the leg live

    async def run(self) -> None:
        """Receive until Twilio stops the leg; ends the call on hang-up or on a silence Twilio
        cannot explain."""
        window = self._idle_s
        while True:
            window = await self._receive_until_quiet(window)
            await self._quiet_for(window)
            window = min(window * 2, MAX_QUIET_WINDOW_S)

    async def _receive_until_quiet(self, window: float) -> float:
        """Handle messages until nothing valid came for the window; returns the window that ran
        out (the configured one again once valid media flowed). One cancel scope whose deadline
        moves on with each valid message: a scope per message cost more than the rest of the
        loop, at 50 messages a second per leg."""
        with trio.CancelScope(deadline=trio.current_time() + window) as quiet:
            while True:
                try:
                    message = await self._leg.receive()
                except LegClosed as closed:
                    # Twilio says ``stop`` before it closes; a socket that ends without one broke.
                    raise CallEnded(EndReason.MEDIA_LOST, f"{self.role}: {closed}") from None
                event = parse(message)
                self.stats.record(event)
                if isinstance(event, Invalid):
                    self._on_invalid(event)
                    continue
                window = self._idle_s
                quiet.deadline = trio.current_time() + window
                self._handle(event)
        return window

    async def _quiet_for(self, window: float) -> None:
        """Nothing valid for ``window`` s: returns if Twilio reports the leg live, else raises."""
        status = await self._leg_status(self.role) if self._leg_status is not None else None
        if status is None:
            detail = f"no valid media from the {self.role} for {window} s"
            raise CallEnded(EndReason.LEG_TIMEOUT, detail)
        if status in TERMINAL_STATUSES:
            detail = f"quiet for {window} s, and Twilio reports the call {status}"
            raise CallEnded(EndReason.hangup(self.role), detail)
        self.quiet_kept += 1
        log.warning("leg_quiet", role=str(self.role), quiet_s=window, twilio_status=status)

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

    def _on_invalid(self, event: Invalid) -> None:
        if event.reason is InvalidReason.TOO_LARGE:
            # Nothing Twilio sends comes near the limit: the stream is not Twilio's any more.
            self._leg.close()
            detail = f"a {event.raw_size}-character message from the {self.role}"
            raise CallEnded(EndReason.MEDIA_TOO_LARGE, detail)
        self._log_invalid(event)

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
