"""The one cancel scope of a Palabra link and the transitions that move it.

A link lives in one task (the supervisor), inside one cancel scope that this class alone creates,
enters, shields and cancels, through named transitions::

    starting --ready()--> streaming --lost()--> reconnecting --ready()--> streaming ...
        \\                   |                      |
         `------------------+------close()---------+--> closing --> finished

- ``run(body)`` enters the scope around the supervisor; ``finished`` is set when it leaves.
- ``ready()`` on every readiness. The first one shields the scope: from then on the caller's
  cancellation (a call that ends) must not cut the goodbye (``end_task``, ``end_of_stream``, the
  legacy session's delete), which ``close`` bounds instead.
- ``lost()`` when a ready connection drops (the supervisor reconnects).
- ``close(grace_s)`` from the link's owner: the supervisor sees ``closing`` and says goodbye; if
  a connection is streaming, ``close`` waits (shielded, at most ``grace_s``) for that, then
  cancels the scope, which ends whatever is left (a reconnect backoff, a hung goodbye).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Literal, TypeAlias

import attrs
import trio

__all__ = ["LinkLifetime", "LinkState"]

LinkState: TypeAlias = Literal["starting", "streaming", "reconnecting", "closing", "finished"]


@attrs.define(eq=False)
class LinkLifetime:
    """See the module docstring. ``state`` is for logs and tests; ``closing`` and ``finished``
    are what the link's tasks wait on."""

    state: LinkState = "starting"
    closing: trio.Event = attrs.Factory(trio.Event)
    finished: trio.Event = attrs.Factory(trio.Event)
    _scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    _started: bool = False
    _end_by: float = math.inf
    _goodbye: trio.CancelScope | None = None

    @property
    def is_closing(self) -> bool:
        return self.closing.is_set()

    async def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body`` (the supervisor) inside the link's scope."""
        try:
            with self._scope:
                await body()
        finally:
            self.state = "finished"
            self.finished.set()

    def ready(self) -> bool:
        """A connection's task runs. Returns True the first time (the link is now started)."""
        if not self.closing.is_set():
            self.state = "streaming"
        if self._started:
            return False
        self._started = True
        self._scope.shield = True
        return True

    def lost(self) -> None:
        """The streaming connection dropped; the supervisor decides whether to reconnect."""
        if not self.closing.is_set():
            self.state = "reconnecting"

    def end_by(self, deadline: float) -> None:
        """Cut the goodbye at ``deadline`` (trio time) at the latest, whatever grace ``close``
        was given: a daemon told to stop cannot wait on a slow Palabra. May be called before or
        during the goodbye."""
        self._end_by = min(self._end_by, deadline)
        if self._goodbye is not None:
            self._goodbye.deadline = min(self._goodbye.deadline, deadline)

    async def close(self, grace_s: float) -> None:
        """Ask for the goodbye, give a streaming connection up to ``grace_s`` (and no later than
        ``end_by``) to finish it, shielded from the caller's cancellation, then cancel the rest."""
        streaming = self.state == "streaming"
        if self.state != "finished":
            self.state = "closing"
        self.closing.set()
        if streaming:
            deadline = min(trio.current_time() + grace_s, self._end_by)
            with trio.CancelScope(shield=True, deadline=deadline) as self._goodbye:
                await self.finished.wait()
        self._scope.cancel()
