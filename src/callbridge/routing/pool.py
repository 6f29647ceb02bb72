"""Operators with languages, and a pool that prefers one who speaks the caller's language.

- ``Operator``: a number, the languages its person speaks (first = the one translated to), a name;
  ``operators_from_config`` reads ``[[operators.team]]`` and, for the plain ``operators.numbers``,
  gives each ``languages.operator``.
- ``plan_bridge(caller_language, operator)``: the ``BridgePlan`` of a call. If the operator speaks
  the caller's language (same base language: ``es`` and ``es-mx`` match) the call is bridged
  without translation (both directions ``passthrough``, no Palabra session), and the operator's
  language is that one (source ``operator_speaks``). Otherwise the pair to translate is the
  caller's language <-> the operator's first language (source ``default``).
- ``OperatorPool``: the interface the dialer uses, async so that a shared (Redis) pool can
  implement it; ``LanguageOperatorPool`` is the in-process one.

``LanguageOperatorPool`` keeps today's ``calls.supervisor.OperatorPool`` semantics: round-robin
over the configured order (each ``acquire`` starts one place further), skipping numbers already in
a call and those in ``exclude`` (already tried for this call); ``release`` frees a number (an
unknown or idle number is ignored). What it adds: when the caller's language is known, an idle
operator who speaks it is taken first, in the same round-robin order; only when none is idle does
it fall back to any idle operator.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Set
from typing import TYPE_CHECKING, Protocol

import attrs

from callbridge.config.languages import AUTO, normalize, same_language
from callbridge.roles import Direction
from callbridge.routing.rules import LanguageSource

if TYPE_CHECKING:
    from callbridge.config import Config

__all__ = [
    "BridgePlan",
    "LanguageOperatorPool",
    "Operator",
    "OperatorPick",
    "OperatorPool",
    "operators_from_config",
    "plan_bridge",
]


@attrs.frozen
class Operator:
    """One operator line. ``languages`` is never empty; the first is translated to."""

    number: str
    languages: tuple[str, ...]
    name: str = ""

    @property
    def first_language(self) -> str:
        return self.languages[0]

    def speaking(self, language: str) -> str | None:
        """The operator's own code for ``language`` (``es-mx`` for ``es``), or ``None``."""
        return next((own for own in self.languages if same_language(own, language)), None)


def operators_from_config(config: Config) -> tuple[Operator, ...]:
    """``[[operators.team]]`` first, then ``operators.numbers`` (each speaking
    ``languages.operator``); a number listed in both keeps its team entry."""
    team = [
        Operator(entry.number, tuple(normalize(code) for code in entry.languages), entry.name)
        for entry in config.operators.team
    ]
    known = {op.number for op in team}
    plain = [
        Operator(number, (normalize(config.languages.operator),))
        for number in config.operators.numbers
        if number not in known
    ]
    return (*team, *plain)


@attrs.frozen
class BridgePlan:
    """What a call translates. ``caller_language`` may be ``"auto"`` (detection pending).

    ``passthrough``: both directions pass the original voice through and no Palabra session is
    opened. Otherwise ``languages(direction)`` gives each direction's (source, target)."""

    caller_language: str
    operator_language: str
    operator_source: LanguageSource

    @property
    def passthrough(self) -> bool:
        return self.operator_source is LanguageSource.OPERATOR_SPEAKS

    def languages(self, direction: Direction) -> tuple[str, str]:
        """``(source, target)`` of ``direction``: the speaker's language, the listener's."""
        if direction is Direction.CALLER_TO_OPERATOR:
            return self.caller_language, self.operator_language
        return self.operator_language, self.caller_language


def plan_bridge(caller_language: str, operator: Operator) -> BridgePlan:
    """The plan for a caller speaking ``caller_language`` and this operator (module docstring)."""
    caller = normalize(caller_language)
    spoken = operator.speaking(caller) if caller != AUTO else None
    if spoken is not None:
        return BridgePlan(caller, spoken, LanguageSource.OPERATOR_SPEAKS)
    return BridgePlan(caller, operator.first_language, LanguageSource.DEFAULT)


@attrs.frozen
class OperatorPick:
    """An acquired operator and the plan for bridging them to this caller."""

    operator: Operator
    plan: BridgePlan

    @property
    def number(self) -> str:
        return self.operator.number


class OperatorPool(Protocol):
    """What the dialer needs from a pool of operator lines.

    ``acquire`` reserves an idle operator not in ``exclude``, preferring one who speaks
    ``caller_language`` (``None`` or ``"auto"``: no preference), or returns ``None`` when every
    operator is busy or excluded. ``release`` returns a number to the pool; releasing a number
    that is not reserved does nothing. Neither raises for an unknown number."""

    async def acquire(
        self, exclude: Set[str], caller_language: str | None = None
    ) -> OperatorPick | None: ...

    async def release(self, number: str) -> None: ...


class LanguageOperatorPool:
    """In-process ``OperatorPool`` (see the module docstring for the order it picks in)."""

    def __init__(self, operators: Iterable[Operator]) -> None:
        self._operators = list(operators)
        self._cursor = itertools.count()
        self._busy: set[str] = set()

    @classmethod
    def from_config(cls, config: Config) -> LanguageOperatorPool:
        return cls(operators_from_config(config))

    @property
    def operators(self) -> tuple[Operator, ...]:
        return tuple(self._operators)

    @property
    def idle(self) -> list[str]:
        return [op.number for op in self._operators if op.number not in self._busy]

    async def acquire(
        self, exclude: Set[str], caller_language: str | None = None
    ) -> OperatorPick | None:
        return self.acquire_now(exclude, caller_language)

    async def release(self, number: str) -> None:
        self.release_now(number)

    def acquire_now(
        self, exclude: Set[str], caller_language: str | None = None
    ) -> OperatorPick | None:
        """``acquire`` without awaiting (this pool never waits)."""
        start = next(self._cursor)
        count = len(self._operators)
        ring = [self._operators[(start + offset) % count] for offset in range(count)]
        free = [op for op in ring if op.number not in self._busy and op.number not in exclude]
        if not free:
            return None
        language = normalize(caller_language) if caller_language else AUTO
        chosen = next((op for op in free if op.speaking(language) is not None), free[0])
        self._busy.add(chosen.number)
        return OperatorPick(chosen, plan_bridge(language, chosen))

    def release_now(self, number: str) -> None:
        """``release`` without awaiting."""
        self._busy.discard(number)
