"""What a listener hears and when: hold audio, the bridge, playout trims and clears."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from callbridge.roles import Direction, Role
from callbridge.sim.analysis import tone_power_db
from tests.calls.harness import harness


class TestPlayout:
    async def test_at_the_bridge_hold_audio_is_cleared_and_the_first_frame_waits_for_the_speaker(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            await caller.talk(0.5)
            # The caller heard hold audio, then one clear, then the call's audio.
            first_clear = caller.received.index("clear")
            assert "media" in caller.received[:first_clear]
            assert caller.received.count("clear") == 1
            assert "media" in caller.received[first_clear + 1 :]
            assert "clear" not in operator.received  # joined at the bridge: nothing to clear
            # The first frame after the clear waited for the speaker instead of going out as
            # silence just before their first frame (which would stand in Twilio's buffer).
            for listener in Role:
                assert session.media.outputs[listener].mixer.original_underrun_ms == 0
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_a_standing_frame_is_never_trimmed_out_of_translated_speech(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator.echo_delay_s = 0.015
            await caller.talk(3.0)  # the floor
            operator.echo_delay_s = 0.045  # a frame creeps in and must go...
            start = len(operator.heard)
            h.links.opened[Direction.CALLER_TO_OPERATOR].speak("long", 1300, 4.0, "es")
            await caller.talk(5.0)  # ...while the caller talks over a long translation
            assert session.media.outputs[Role.OPERATOR].probe.trimmed >= 1
            frames = operator.heard[start:]
            times = operator.heard_at[start:]
            translated = [
                i for i, pcm in enumerate(frames) if tone_power_db(pcm.astype(float), 1300) > -40
            ]
            playing = (times[translated[0]], times[translated[-1]])
            assert len(translated) >= 4.0 / 0.02 - 1
            # Frames go out with the caller's, every 20 ms: a trim shows as a 40 ms step.
            trims = [b for a, b in itertools.pairwise(times) if b - a > 0.03]
            assert trims  # the standing frame went...
            assert not [t for t in trims if playing[0] <= t <= playing[1]]  # ...after the speech
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_at_the_bridge_the_other_sides_first_frame_goes_out_as_it_arrives(
        self, autojump_clock: Any
    ) -> None:
        """The caller's output was between two hold frames when the call was bridged; it must
        not wait for its next hold slot to send the operator's first frame (sent late, it would
        be followed too soon by the next, and stand in Twilio's buffer)."""
        # Hold frames go out on 20 ms slots from 0; the translators are ready (so the call is
        # bridged) at 0.503, and the operator's frame at 0.507 comes before the 0.520 slot.
        async with harness(ready_delay=0.503) as h:
            session, caller, operator = await h.bridged_call(operator_phase_s=0.007)
            await trio.sleep(0.1)
            first = caller.received[: caller.received.index("clear")].count("media")
            since_operator = caller.heard_at[first] - operator.streaming_since
            frames = since_operator / 0.02
            assert abs(frames - round(frames)) < 0.01  # at one of the operator's frame times
            # ...and the first of them after the bridge, not one a frame later.
            assert caller.heard_at[first] == pytest.approx(0.507, abs=0.001)
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_the_original_never_waits_on_our_side_after_the_speaker_stalled(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            await trio.sleep(0.5)
            # The caller's leg stalls for 300 ms and then delivers those frames at once: the
            # frames their slots went out without are late, and must not queue up on our side.
            caller.held_until = trio.current_time() + 0.3
            await trio.sleep(1.0)
            await caller.talk(0.5)
            loud = [i for i, pcm in enumerate(operator.heard) if np.abs(pcm).max() > 1000]
            assert loud
            assert operator.heard_at[loud[0]] - caller.spoke_at[0] < 0.001
            await caller.stop()
            assert await h.ended(session) == "caller_hangup"

    async def test_a_backlog_in_twilios_buffer_is_cleared_and_cut_translations_not_marked_played(
        self, autojump_clock: Any
    ) -> None:
        async with harness() as h:
            session, caller, operator = await h.bridged_call()
            operator.echo_delay_s = 0.015
            await caller.talk(3.0)  # probes establish the floor
            operator.backlog_s = 1.5  # the operator's Twilio buffer now holds 1.5 s
            await caller.talk(1.5)
            # Ends playing into the backlog; the clear comes before Twilio would have played it.
            h.links.opened[Direction.CALLER_TO_OPERATOR].speak("late", 1300, 0.4, "es")
            await caller.talk(3.0)
            assert operator.clears == 1
            await caller.talk(3.0)
            assert operator.clears == 1  # once the backlog is gone, nothing more to clear
            assert "u:late" in operator.marks
            played = [e.utterance_id for e in h.sink.events if e.kind == "played"]
            assert "late" not in played  # its end was thrown away by the clear, never heard
            await caller.stop()
            ended = await h.ended(session)
            assert ended == "caller_hangup"
