"""``CallSupervisor``: admits calls, owns the nursery every call runs in, drains on shutdown."""

from __future__ import annotations

import trio

from callbridge.config import Config
from callbridge.log import get_logger

__all__ = ["CallSupervisor"]

log = get_logger("callbridge.supervisor")


class CallSupervisor:
    """Owns every call's task. Resource handling: ``run`` holds the calls nursery; cancelling it
    ends every call with reason ``shutdown``."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._nursery: trio.Nursery | None = None
        self._draining = False
        self._calls: dict[str, object] = {}

    @property
    def active_count(self) -> int:
        return len(self._calls)

    @property
    def draining(self) -> bool:
        return self._draining

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def drain(self, grace_s: float) -> None:
        """Stop admitting; wait up to ``grace_s`` for live calls, then end the rest."""
        self._draining = True
        with trio.move_on_after(grace_s):
            while self._calls:
                await trio.sleep(0.05)
        self.cancel_all()

    def cancel_all(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
