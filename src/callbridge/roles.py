"""Who is speaking to whom: the two parties of a call and the two translation directions."""

from __future__ import annotations

import enum

__all__ = ["Direction", "Role"]


class Role(enum.StrEnum):
    CALLER = "caller"
    OPERATOR = "operator"

    @property
    def other(self) -> Role:
        return Role.OPERATOR if self is Role.CALLER else Role.CALLER

    @property
    def speaks(self) -> Direction:
        """The direction in which this party is the speaker."""
        return Direction.CALLER_TO_OPERATOR if self is Role.CALLER else Direction.OPERATOR_TO_CALLER


class Direction(enum.StrEnum):
    CALLER_TO_OPERATOR = "caller_to_operator"
    OPERATOR_TO_CALLER = "operator_to_caller"

    @property
    def speaker(self) -> Role:
        return Role.CALLER if self is Direction.CALLER_TO_OPERATOR else Role.OPERATOR

    @property
    def listener(self) -> Role:
        return self.speaker.other
