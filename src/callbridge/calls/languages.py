"""``CallLanguages``: one call's languages, from admission to its end, and the Palabra tasks they
call for.

The caller's language was decided at admission (``routing.LanguageRules``: ``prefix``, ``menu``,
``detected`` pending, ``default``) and is in the record. Then, as the call goes on:

- ``operator_picked``: the dialer took an operator from the pool (``routing.OperatorPick``); its
  ``BridgePlan`` says whether the call is translated, and between which languages. A later
  attempt (the first operator did not answer) may bring another plan.
- ``on_key``: the caller pressed a key on the media stream. ``*`` then a menu digit
  (``routing.KeypadSwitch``) switches the caller's language (source ``menu``), and the plan is
  made again for the same operator, who may or may not speak the new language.
- ``on_detected``: Palabra detected the caller's language on the caller->operator link (the
  caller is ``auto``). It is recorded (source ``detected``) and becomes the target of the
  operator->caller direction; the caller's own direction keeps detecting.

Every change is written to the record and published to the page at once. ``tasks()`` gives
the Palabra task of each direction for the state now (empty: no translation, either because the
operator speaks the caller's language or because no operator was picked yet);
``calls.translation.CallTranslation`` follows it through ``version`` and ``next_change``.

Everything here is synchronous and never blocks, so the receive task and the translators can
call it directly.
"""

from __future__ import annotations

import trio

from callbridge.calls.broadcast import CallBroadcaster
from callbridge.config import Config
from callbridge.config.languages import AUTO, normalize
from callbridge.log import get_logger
from callbridge.palabra.task import TaskSettings
from callbridge.records import CallRecord
from callbridge.roles import Direction
from callbridge.routing import (
    BridgePlan,
    KeypadSwitch,
    LanguageRules,
    LanguageSource,
    Operator,
    OperatorPick,
    plan_bridge,
)

__all__ = ["CallLanguages"]

log = get_logger("callbridge.languages")


class CallLanguages:
    """One call's languages (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        record: CallRecord,
        broadcaster: CallBroadcaster,
        rules: LanguageRules | None = None,
    ) -> None:
        self._config = config
        self._record = record
        self._broadcaster = broadcaster
        self._switch = KeypadSwitch(rules or LanguageRules.from_config(config))
        self._operator: Operator | None = None
        self._plan: BridgePlan | None = None
        self._detected: str | None = None
        self._changed = trio.Event()
        self.version = 0  # bumped whenever tasks() may have changed
        self.switches = 0  # *digit switches during the call

    @property
    def plan(self) -> BridgePlan | None:
        """The plan for the operator picked last; ``None`` before the first pick."""
        return self._plan

    @property
    def translated(self) -> bool | None:
        """Whether the call is translated; ``None`` before an operator was picked."""
        return None if self._plan is None else not self._plan.passthrough

    # ---- what happens during the call ---------------------------------------------------------

    def operator_picked(self, pick: OperatorPick) -> None:
        """The dialer is about to ring ``pick``'s operator: the call follows its plan."""
        self._operator = pick.operator
        self._apply(pick.plan)

    def on_key(self, key: str) -> None:
        """A key the caller pressed during the call (Twilio ``dtmf``); ``*`` then a menu digit
        switches their language."""
        chosen = self._switch.press(key, trio.current_time())
        record = self._record
        if chosen is None or (chosen.language, chosen.source) == (
            record.caller_language,
            record.caller_language_source,
        ):
            return  # no switch, or to the language already chosen
        log.info(
            "caller_language_switched",
            language=chosen.language,
            was=record.caller_language,
            operator=self._operator is not None,
        )
        self.switches += 1
        self._detected = None
        record.set_caller_language(chosen.language, chosen.source)
        if self._operator is not None:
            self._apply(plan_bridge(chosen.language, self._operator))
        else:
            self._publish()

    def on_detected(self, direction: Direction, language: str) -> None:
        """Palabra detected the speaker's language on ``direction``'s link. Only the caller's
        detection matters (their language is ``auto``); a language already known is ignored."""
        record = self._record
        code = normalize(language)
        pending = record.caller_language_source == LanguageSource.DETECTED
        if direction is not Direction.CALLER_TO_OPERATOR or not pending or code == AUTO:
            return
        if code == self._detected:
            return
        log.info("caller_language_detected", language=code, was=record.caller_language)
        self._detected = code
        record.set_caller_language(code, LanguageSource.DETECTED)
        self._bump()
        self._publish()

    # ---- what the translators run ---------------------------------------------------------------

    def tasks(self) -> dict[Direction, TaskSettings]:
        """Each direction's Palabra task for the call as it is now; empty: no translation."""
        plan = self._plan
        if plan is None or plan.passthrough:
            return {}
        operator = plan.operator_language
        # The caller's own direction keeps its plan's source ("auto" keeps detecting); what they
        # hear is in the language detected, once there is one.
        heard = self._detected or plan.caller_language
        config = self._config
        return {
            Direction.CALLER_TO_OPERATOR: TaskSettings.resolve(
                config,
                Direction.CALLER_TO_OPERATOR,
                caller_language=plan.caller_language,
                operator_language=operator,
            ),
            Direction.OPERATOR_TO_CALLER: TaskSettings.resolve(
                config,
                Direction.OPERATOR_TO_CALLER,
                caller_language=heard,
                operator_language=operator,
            ),
        }

    async def next_change(self, seen: int) -> int:
        """Wait until ``version`` is past ``seen``; the new version."""
        while self.version <= seen:
            await self._changed.wait()
        return self.version

    # ---- helpers --------------------------------------------------------------------------------

    def _apply(self, plan: BridgePlan) -> None:
        record = self._record
        if plan != self._plan:
            log.info(
                "call_languages_planned",
                caller_language=plan.caller_language,
                operator_language=plan.operator_language,
                translated=not plan.passthrough,
            )
        self._plan = plan
        record.set_operator_language(plan.operator_language, plan.operator_source)
        self._bump()
        self._publish()

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    def _publish(self) -> None:
        self._broadcaster.call_updated(self._record)
