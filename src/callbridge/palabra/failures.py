"""How a Palabra connection ended, and how much reconnecting a link may still do.

``classify(exc)`` maps whatever ended one connection to what the link's supervisor acts on: a fatal
error as itself (``PalabraAuthError``, ``PalabraTaskRejected``), anything transient as
``Dropped`` (worth a reconnect), anything else (a bug, a cancellation) unchanged.
``ReconnectBudget`` counts attempts and outage seconds over the link's life.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError

from callbridge.errors import PalabraAuthError, PalabraTaskRejected, PalabraUnavailable
from callbridge.palabra.auth import AUTH_STATUSES

__all__ = [
    "CONNECTION_ENDINGS",
    "Dropped",
    "ReconnectBudget",
    "classify",
    "close_code",
    "sole_leaf",
]


class Dropped(Exception):
    """The current connection is gone or unusable; the supervisor may reconnect. ``stalled``:
    it was open and ready but answered no speech (not a failure of the service's reachability,
    so it spends no reconnect attempt)."""

    def __init__(self, reason: str, *, stalled: bool = False) -> None:
        self.reason = reason
        self.stalled = stalled
        super().__init__(reason)


@attrs.define
class ReconnectBudget:
    """Reconnect budget over the link's life: attempts, and seconds spent without a ready task."""

    attempts: int
    seconds: float
    used_attempts: int = 0
    spent_s: float = 0.0
    outage_since: float | None = None

    def deadline(self) -> float:
        if self.outage_since is None:
            return math.inf
        return self.outage_since + max(0.0, self.seconds - self.spent_s)

    def lost(self, now: float) -> None:
        if self.outage_since is None:
            self.outage_since = now

    def recovered(self, now: float) -> None:
        if self.outage_since is not None:
            self.spent_s += now - self.outage_since
            self.outage_since = None

    def used_s(self, now: float) -> float:
        return self.spent_s + (0.0 if self.outage_since is None else now - self.outage_since)

    def exhausted(self, now: float) -> bool:
        return self.used_attempts >= self.attempts or self.used_s(now) >= self.seconds


RETRYABLE: tuple[type[BaseException], ...] = (
    Dropped,
    ConnectionClosed,
    HandshakeError,
    OSError,
    trio.BrokenResourceError,
    PalabraUnavailable,
)
CONNECTION_ENDINGS: tuple[type[BaseException], ...] = (BaseExceptionGroup, *RETRYABLE)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def classify(exc: BaseException) -> BaseException:
    """Map what ended a connection to what the supervisor acts on: a fatal Palabra error as
    itself, a refused upgrade with an auth status as ``PalabraAuthError``, anything transient as
    ``Dropped``. Anything else (a bug, a cancellation) is returned unchanged and re-raised."""
    leaves = list(_leaves(exc))
    if any(isinstance(leaf, trio.Cancelled) for leaf in leaves):
        return exc
    for leaf in leaves:
        if isinstance(leaf, PalabraAuthError | PalabraTaskRejected):
            return leaf
        if isinstance(leaf, ConnectionRejected) and leaf.status_code in AUTH_STATUSES:
            msg = f"Palabra refused the WebSocket upgrade: HTTP {leaf.status_code}"
            return PalabraAuthError(msg, status=leaf.status_code)
    if leaves and all(isinstance(leaf, RETRYABLE) for leaf in leaves):
        stalled = all(isinstance(leaf, Dropped) and leaf.stalled for leaf in leaves)
        return Dropped("; ".join(_describe(leaf) for leaf in leaves), stalled=stalled)
    return exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Dropped):
        return exc.reason
    if isinstance(exc, ConnectionClosed):
        return f"connection closed ({close_code(exc)})"
    if isinstance(exc, ConnectionRejected):
        return f"upgrade refused: HTTP {exc.status_code}"
    return f"{type(exc).__name__}: {exc}"


def close_code(exc: ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "no close frame"
    return f"{reason.code} {reason.reason or ''}".strip()


def sole_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    leaves = list(_leaves(group))
    return leaves[0] if len(leaves) == 1 else None
