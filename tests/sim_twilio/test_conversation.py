"""Script mode turn-taking rule, on a mock clock."""

from __future__ import annotations

import numpy as np
import trio

from callbridge.sim.twilio.audio import Party, QueueVoice
from callbridge.sim.twilio.conversation import Conversation, Turn
from callbridge.sim.twilio.scenario import ScriptOptions


async def _pump(party: Party) -> None:
    """Stands in for the stream ticker: pulls one frame of the party's voice per 20 ms."""
    party.stream_started_at = trio.current_time()
    party.stream_live.set()
    assert isinstance(party.voice, QueueVoice)
    while True:
        party.voice.next_frame()
        await trio.sleep(0.02)


async def test_next_turn_starts_gap_after_listener_heard_translation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    opts = ScriptOptions(
        "unused", settle_s=0.4, quiet_s=0.7, translation_wait_s=8, turn_timeout_s=30
    )
    speech = np.full(8000, 3000, np.int16)  # 1 s
    turns = [Turn("caller", "hi", speech, 1.0), Turn("operator", "hola", speech, 0.5)]
    parties = {name: Party(name, voice=QueueVoice()) for name in ("caller", "operator")}
    conv = Conversation(opts, turns, parties)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            nursery.start_soon(_pump, parties["caller"])
            nursery.start_soon(_pump, parties["operator"])
            nursery.start_soon(conv.run)
            while not (conv.log and "ended_at" in conv.log[0]):
                await trio.sleep(0.01)
            turn0_end = trio.current_time()
            assert abs(turn0_end - t0 - 2.0) < 0.05  # 1 s gap + 1 s of speech
            await trio.sleep(1.0)  # translation latency, then 1 s of heard translation
            for _ in range(50):
                parties["operator"].last_loud = trio.current_time()
                await trio.sleep(0.02)
            while len(conv.log) < 2:
                await trio.sleep(0.01)
            started = trio.current_time() - turn0_end
            nursery.cancel_scope.cancel()
    # heard until +2.0 s, quiet 0.7 s, then gap 0.5 s
    assert abs(started - 3.2) < 0.1
    assert conv.log[0]["heard_rule"] == "translation_heard"
