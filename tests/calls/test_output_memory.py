"""A listener's output keeps no per-utterance state for longer than it needs (issue 12 §4)."""

from __future__ import annotations

from typing import Any

from callbridge.calls.output import MARKS_KEPT
from callbridge.roles import Direction, Role
from tests.calls.harness import harness


async def test_marks_whose_echo_never_comes_are_bounded(autojump_clock: Any) -> None:
    """A leg that stops echoing marks (or loses them) must not make the output remember every
    utterance mark it ever sent for the rest of the call."""
    async with harness() as h:
        session, caller, operator = await h.bridged_call()
        output = session.media.outputs[Role.OPERATOR]
        link = h.links.opened[Direction.CALLER_TO_OPERATOR]
        operator.echo_delay_s = 1e9  # Twilio never echoes anything
        utterances = 3 * MARKS_KEPT
        for n in range(utterances):
            link.speak(f"lost-{n}", 1300, 0.06, "es")
            await caller.talk(0.1)
        assert sum(name.startswith("u:lost-") for name in operator.marks) == utterances
        assert output.marks_awaiting_echo <= MARKS_KEPT
        # Echoes that come again still report what was heard.
        operator.echo_delay_s = 0.0
        link.speak("heard", 1300, 0.06, "es")
        await caller.talk(0.5)
        played = [e.utterance_id for e in h.sink.events if e.kind == "played"]
        assert played == ["heard"]
        assert output.marks_awaiting_echo <= MARKS_KEPT
        await caller.stop()
        assert await h.ended(session) == "caller_hangup"
