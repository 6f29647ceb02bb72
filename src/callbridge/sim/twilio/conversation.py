"""Script mode: the two phones take turns saying the demo script's source audio.

Turn-taking rule (documented, and recorded per turn in the report):

1. Turn 0 starts ``gap_before_s`` after its speaker's stream started.
2. Turn k (k > 0) starts ``gap_before_s`` after the *listener of turn k-1 finished hearing it*:
   after the speaker's last frame left, the listener's heard audio (what the app played to it)
   must have had a loud frame (RMS above about -40 dBFS) later than ``settle_s`` after the turn
   ended (``settle_s`` skips the tail of the ducked original) and then ``quiet_s`` of quiet. If no
   such translation is heard within ``translation_wait_s``, ``quiet_s`` of quiet is enough; after
   ``turn_timeout_s`` the next turn starts regardless.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from callbridge.log import get_logger
from callbridge.sim.twilio.audio import Party, Pcm, QueueVoice, read_wav_8k
from callbridge.sim.twilio.scenario import ScriptOptions

__all__ = ["Conversation", "Turn", "load_turns"]

log = get_logger("callbridge.sim.twilio.conversation")

POLL_S = 0.05


@attrs.frozen
class Turn:
    speaker: str
    source_text: str
    audio: Pcm = attrs.field(eq=False, repr=False)
    gap_before_s: float = 1.0


def load_turns(path: Path) -> list[Turn]:
    data = json.loads(path.read_text(encoding="utf-8"))
    turns = []
    for i, raw in enumerate(data.get("turns", [])):
        speaker = raw.get("speaker")
        if speaker not in ("caller", "operator"):
            msg = f"{path}: turn {i}: speaker must be caller or operator"
            raise ValueError(msg)
        audio = read_wav_8k(path.parent / raw["source_audio"])
        turns.append(
            Turn(speaker, raw.get("source_text", ""), audio, float(raw.get("gap_before_s", 1.0)))
        )
    return turns


@attrs.define
class Conversation:
    options: ScriptOptions
    turns: list[Turn]
    parties: dict[str, Party]
    log: list[dict[str, Any]] = attrs.field(factory=list)

    def voice(self, party: str) -> QueueVoice:
        voice = self.parties[party].voice
        assert isinstance(voice, QueueVoice)
        return voice

    async def run(self) -> None:
        prev_end: float | None = None
        prev_listener: Party | None = None
        for k, turn in enumerate(self.turns):
            speaker = self.parties[turn.speaker]
            await speaker.stream_live.wait()
            entry: dict[str, Any] = {"turn": k, "speaker": turn.speaker, "text": turn.source_text}
            if prev_end is None or prev_listener is None:
                base = speaker.stream_started_at
            else:
                base, rule = await self._wait_heard(prev_listener, prev_end)
                self.log[-1].update(heard_done_at=time.time(), heard_rule=rule)
            await trio.sleep_until(base + turn.gap_before_s)
            entry["started_at"] = time.time()
            self.log.append(entry)
            log.info("turn_start", turn=k, speaker=turn.speaker)
            await self.voice(turn.speaker).say(turn.audio).wait()
            entry["ended_at"] = time.time()
            prev_end = trio.current_time()
            prev_listener = self.parties["operator" if turn.speaker == "caller" else "caller"]

    async def _wait_heard(self, listener: Party, ended: float) -> tuple[float, str]:
        o = self.options
        while True:
            now = trio.current_time()
            quiet = now - max(listener.last_loud, ended) >= o.quiet_s
            if listener.last_loud > ended + o.settle_s and quiet:
                return now, "translation_heard"
            if now >= ended + o.translation_wait_s and quiet:
                return now, "no_translation"
            if now >= ended + o.turn_timeout_s:
                return now, "timeout"
            await trio.sleep(POLL_S)
