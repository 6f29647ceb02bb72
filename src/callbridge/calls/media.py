"""``CallMedia``: the wiring of one call's media tasks. It builds them and says who feeds whom.

Per call (``LegReceiver``, ``Translator`` and ``ListenerOutput`` are each one task)::

    caller leg  -> LegReceiver(caller) --original--> ListenerOutput(operator) -> operator leg
                                       --8 kHz----> Translator(caller_to_operator)
                                                       --translated speech--> ListenerOutput(operator)
                                                       --transcripts--------> CallBroadcaster
    operator leg -> LegReceiver(operator) ... the same, the other way round ... -> caller leg

A speaker's audio reaches only the *other* party's output, so nobody hears themselves or their
own translation. A direction in ``passthrough`` mode has no translator (no Palabra session).
Originals flow only once the call is bridged (``bridge``).

Whether the translators run, and with which languages, is the call's own
(``translation.CallTranslation`` following ``languages.CallLanguages``): a call whose operator
speaks the caller's language runs none, and both listeners hear the original alone (a ``voice``
mixer that is never given translated speech plays the original at ``original_gain_db``, as
``passthrough`` does). The caller's keys go to ``CallLanguages.on_key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import trio

from callbridge.audio import FRAME_MS, Pcm
from callbridge.calls.broadcast import CallBroadcaster
from callbridge.calls.languages import CallLanguages
from callbridge.calls.mixer import ListenerMixer
from callbridge.calls.output import ListenerOutput
from callbridge.calls.ports import LinkOpener
from callbridge.calls.receive import LegReceiver, LegStatus
from callbridge.calls.translate import Translator, feed_batch_samples
from callbridge.calls.translation import CallTranslation
from callbridge.config import DirectionMode, MediaConfig
from callbridge.roles import Direction, Role
from callbridge.telephony.legs import MediaLeg
from callbridge.telephony.media_stats import MediaStats

__all__ = ["CallMedia"]


class CallMedia:
    """The media side of one call (all on one trio thread, no locks)."""

    def __init__(
        self,
        media: MediaConfig,
        modes: Mapping[Direction, DirectionMode],
        *,
        hold: Pcm,
        open_link: LinkOpener,
        broadcaster: CallBroadcaster,
        call_id: str,
        palabra_chunk_ms: int,
        languages: CallLanguages,
    ) -> None:
        self._config = media
        self._languages = languages
        self.bridged = trio.Event()
        self.outputs = {
            listener: ListenerOutput(
                listener,
                ListenerMixer.from_config(media, modes[listener.other.speaks]),
                hold=hold,
                bridged=self.bridged,
                broadcaster=broadcaster,
                call_id=call_id,
                stats=MediaStats(),
                playout_target_s=media.playout_target_ms / 1000,
                frames_per_message=media.outbound_frame_ms // FRAME_MS,
            )
            for listener in Role
        }
        self.translators = {
            direction: Translator(
                direction,
                mode,
                open_link=open_link,
                listener=self.outputs[direction.listener],
                broadcaster=broadcaster,
                call_id=call_id,
                batch_samples=feed_batch_samples(palabra_chunk_ms),
                on_language=languages.on_detected,
            )
            for direction, mode in modes.items()
            if mode != "passthrough"
        }
        self.translation = CallTranslation(self.translators, languages)
        self.receivers: dict[Role, LegReceiver] = {}

    def receiver(self, leg: MediaLeg, leg_status: LegStatus | None = None) -> LegReceiver:
        """The receive task of a leg that just attached (``leg_status``: asks Twilio whether a
        quiet leg is still live)."""
        role = leg.role
        receiver = LegReceiver(
            leg,
            own_output=self.outputs[role],
            other_output=self.outputs[role.other],
            translator=self.translators.get(role.speaks),
            bridged=self.bridged,
            idle_s=self._config.leg_idle_timeout_s,
            leg_status=leg_status,
            # Twilio sends keys only from the caller's phone; they may switch the caller's language.
            on_key=self._languages.on_key if role is Role.CALLER else None,
        )
        self.receivers[role] = receiver
        return receiver

    def start_translators(self, nursery: trio.Nursery) -> None:
        """Run the translators as the call's languages require: opened as soon as an operator is
        picked (while their phone rings), updated or stopped when the languages change."""
        nursery.start_soon(self.translation.run, name="translation")

    def start_output(
        self, nursery: trio.Nursery, role: Role, get_leg: Callable[[], Awaitable[MediaLeg]]
    ) -> None:
        """The listener's mixer task (hold audio, then the mix)."""
        nursery.start_soon(self.outputs[role].run, get_leg, name=f"output-{role}")

    async def wait_translators_ready(self) -> None:
        await self.translation.wait_ready()

    def translators_ready(self) -> bool:
        return self.translation.ready()

    async def wait_streams_started(self) -> None:
        for output in self.outputs.values():
            await output.started.wait()

    def streams_started(self) -> bool:
        return all(output.started.is_set() for output in self.outputs.values())

    def bridge(self) -> None:
        """Both parties are on: originals start flowing to the other side and to the translators."""
        self.bridged.set()

    def summary(self) -> dict[str, object]:
        """Counters for the call's summary line; zeros are left out to keep the line readable."""
        return _without_zeros(
            {
                "media": {str(role): out.summary() for role, out in self.outputs.items()},
                "translator_feed_dropped": {
                    str(d): t.feed_dropped for d, t in self.translators.items()
                },
                "translator_cut": {str(d): t.cut for d, t in self.translators.items()},
                "translator_notices": self._notices(),
                "translator_task_updates": self.translation.task_updates,
            }
        )

    def _notices(self) -> dict[str, int]:
        """Palabra warnings and errors by code, both directions together."""
        notices: dict[str, int] = {}
        for translator in self.translators.values():
            for code, count in translator.notices.items():
                notices[code] = notices.get(code, 0) + count
        return notices


def _without_zeros(node: Mapping[str, object]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            value = _without_zeros(value)
        if value or value is False:
            result[key] = value
    return result
