"""``OperatorPool``: which operator number to ring next.

Round-robin over the configured numbers, skipping those already in a call (``acquire`` holds a
number until ``release``), so two calls never ring the same operator and load spreads evenly.
"""

from __future__ import annotations

import itertools

__all__ = ["OperatorPool"]


class OperatorPool:
    """The operator numbers of one daemon (``operators.numbers``)."""

    def __init__(self, numbers: list[str]) -> None:
        self._numbers = list(numbers)
        self._cursor = itertools.count()
        self._busy: set[str] = set()

    def acquire(self, exclude: set[str]) -> str | None:
        """The next idle number not in ``exclude``, now held; None when there is none."""
        start = next(self._cursor)
        count = len(self._numbers)
        for offset in range(count):
            number = self._numbers[(start + offset) % count]
            if number not in self._busy and number not in exclude:
                self._busy.add(number)
                return number
        return None

    def release(self, number: str) -> None:
        self._busy.discard(number)

    @property
    def idle(self) -> list[str]:
        return [n for n in self._numbers if n not in self._busy]
