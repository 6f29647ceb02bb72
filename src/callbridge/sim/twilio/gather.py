"""``<Gather>`` in the fake Twilio: the prompts play, then the scripted caller presses keys or not.

What Twilio does (https://www.twilio.com/docs/voice/twiml/gather): the nested ``<Say>``/``<Play>``
play; keys end the ``<Gather>`` and Twilio requests ``action`` (default: the current document's
URL) with ``Digits``, running the TwiML it returns; no key within ``timeout`` seconds after the
prompts moves on to the next verb, unless ``actionOnEmptyResult="true"`` asks for the action
request anyway (then without ``Digits``).

The keys come from the scenario: ``caller.menu_digits[n]`` for the call's n-th ``<Gather>``
(``""`` or past the end: nothing), pressed ``caller.menu_press_delay_s`` after the prompts (the
simulator does not barge in on a prompt). ``numDigits`` keeps only that many keys. Every
``<Gather>`` is recorded in the party's events (``kind: "gather"``). A gather sees its call only
as a :class:`GatherCall`.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Literal, Protocol

import trio

from callbridge.sim.twilio.audio import Party
from callbridge.sim.twilio.scenario import CallerSpec, Timing
from callbridge.sim.twilio.twiml import Document, Gather, Pause, Play, Say

__all__ = ["GatherCall", "run_gather"]


class GatherCall(Protocol):
    """What a ``<Gather>`` needs from its call (:class:`callbridge.sim.twilio.calls.Call`)."""

    gathers_run: int  # <Gather> verbs run so far: indexes ``caller.menu_digits``

    @property
    def caller(self) -> CallerSpec | None: ...

    @property
    def party(self) -> Party: ...

    def heard_say(self, text: str, language: str, seconds: float, *, voice: str = "") -> None:
        """The party hears a ``<Say>`` of ``seconds`` (recorded in its events)."""

    async def fetch(
        self, url: str, method: str, *, kind: str, status: str, extra: dict[str, str] | None = None
    ) -> Document | None:
        """Request TwiML from the app; None when the request failed (error recorded)."""


async def run_gather(
    call: GatherCall, verb: Gather, base: str, timing: Timing
) -> Document | Literal["next"] | None:
    """Run one ``<Gather>``, its prompts paced by ``timing``; returns the action's document,
    ``None`` (the fetch failed), or ``"next"`` (no key: go on with the next verb)."""
    index = call.gathers_run
    call.gathers_run += 1
    spec = call.caller
    scripted = spec.menu_digits if spec is not None else []
    digits = scripted[index] if index < len(scripted) else ""
    if verb.num_digits is not None:
        digits = digits[: verb.num_digits]
    await _play_prompts(call, verb.prompts, timing)
    record = {"kind": "gather", "index": index, "digits": digits, "at": time.time()}
    call.party.events.append(record)
    if digits:
        await trio.sleep(spec.menu_press_delay_s if spec is not None else 0.0)
        record["pressed_at"] = time.time()
    else:
        await trio.sleep(verb.timeout)
        if not verb.action_on_empty_result:
            return "next"
    action = urllib.parse.urljoin(base, verb.action) if verb.action else base
    extra = {"Digits": digits} if digits else {}
    return await call.fetch(
        action, verb.method, kind="gather_action", status="in-progress", extra=extra
    )


async def _play_prompts(
    call: GatherCall, prompts: tuple[Say | Play | Pause, ...], timing: Timing
) -> None:
    for prompt in prompts:
        if isinstance(prompt, Say):
            seconds = min(len(prompt.text) * timing.say_ms_per_char / 1000, timing.say_max_s)
            call.heard_say(prompt.text, prompt.language, seconds, voice=prompt.voice)
            await trio.sleep(seconds)
        elif isinstance(prompt, Play):
            await trio.sleep(timing.play_nominal_s * max(prompt.loop, 1))
        else:
            await trio.sleep(prompt.length)
