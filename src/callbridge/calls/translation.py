"""``CallTranslation``: runs a call's translators as its languages require.

One task (``run``) follows ``CallLanguages``: whenever its ``version`` moves it compares the tasks
the languages want (``CallLanguages.tasks()``) with what runs, and

- opens the translators (each ``Translator.run`` with its direction's task) when the call is to be
  translated and none runs: as soon as the first operator is picked, so the links are ready by
  the time they answer;
- updates a running link's task in place (``Translator.update_task``, i.e. Palabra's
  ``set_task`` on the live connection) when its languages changed: another operator's language
  after a failed attempt, a caller who pressed ``*`` and a digit, a detected language;
- stops the translators (their links say goodbye and close) when the call is no longer to be
  translated: the operator speaks the caller's language, so both directions pass the original
  through and no Palabra session stays open.

Changes are applied one at a time, in order, in this task: an update may wait up to 2 s for
Palabra's rate limit, and the receive loop and the translators never wait for it.

Error handling: a translator failing (``PalabraUnavailable``, a rejected task) propagates and ends
the call, as before. A task update to a link that is closing is logged and skipped: the link's
own failure ends the call.

Resource handling: the translators run in this task's nursery, so they end with the call.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from callbridge.calls.languages import CallLanguages
from callbridge.calls.translate import Translator
from callbridge.log import get_logger
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction

__all__ = ["CallTranslation"]

log = get_logger("callbridge.translation")


class CallTranslation:
    """A call's translators, run as its languages say (see the module docstring)."""

    def __init__(
        self, translators: Mapping[Direction, Translator], languages: CallLanguages
    ) -> None:
        self._translators = translators
        self._languages = languages
        self._running: dict[Direction, TaskSettings] = {}  # the task each running link runs
        self._ready: set[Direction] = set()
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._applied = 0  # the languages' version applied last
        self._poke = trio.Event()
        self.starts = 0
        self.stops = 0
        self.task_updates = 0

    @property
    def running(self) -> Mapping[Direction, TaskSettings]:
        """The task of each running translator (empty: none runs)."""
        return dict(self._running)

    def ready(self) -> bool:
        """Every change so far is applied and every running translator's link is ready."""
        return self._applied == self._languages.version and self._ready >= self._running.keys()

    async def wait_ready(self) -> None:
        while True:
            poke = self._poke
            if self.ready():
                return
            await poke.wait()

    async def run(self) -> None:
        """Follow the call's languages until the call ends (see the module docstring)."""
        async with trio.open_nursery() as nursery:
            while True:
                version = await self._languages.next_change(self._applied)
                tasks = self._languages.tasks()
                await self._apply(
                    nursery, {d: t for d, t in tasks.items() if d in self._translators}
                )
                self._applied = version
                self._wake()

    async def _apply(self, nursery: trio.Nursery, tasks: dict[Direction, TaskSettings]) -> None:
        if not tasks:
            if self._scope is not None:
                await self._stop()
            return
        if self._scope is None:
            self._start(nursery, tasks)
            return
        for direction, settings in tasks.items():
            if self._running.get(direction) != settings:
                await self._update(direction, settings)

    def _start(self, nursery: trio.Nursery, tasks: dict[Direction, TaskSettings]) -> None:
        log.info("translators_starting", directions=sorted(str(d) for d in tasks))
        self.starts += 1
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        self._running = dict(tasks)
        self._ready = set()
        nursery.start_soon(self._run_group, self._scope, dict(tasks), self._stopped)

    async def _run_group(
        self, scope: trio.CancelScope, tasks: dict[Direction, TaskSettings], stopped: trio.Event
    ) -> None:
        try:
            with scope:
                async with trio.open_nursery() as group:
                    for direction, settings in tasks.items():
                        group.start_soon(self._run_one, self._translators[direction], settings)
        finally:
            stopped.set()

    async def _run_one(self, translator: Translator, settings: TaskSettings) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(translator.run, settings)
            self._ready.add(translator.direction)
            self._wake()

    async def _stop(self) -> None:
        assert self._scope is not None
        log.info("translators_stopping", directions=sorted(str(d) for d in self._running))
        self.stops += 1
        self._scope.cancel()
        await self._stopped.wait()
        self._scope = None
        self._running = {}
        self._ready = set()

    async def _update(self, direction: Direction, settings: TaskSettings) -> None:
        """Update a running link's task once it is ready (an update sent while it opens would be
        overtaken by the task it opens with)."""
        while direction not in self._ready:
            poke = self._poke
            await poke.wait()
        try:
            updated = await self._translators[direction].update_task(settings)
        except trio.ClosedResourceError:
            log.warning("translator_update_skipped", direction=str(direction), reason="closing")
            return
        if updated:
            self._running[direction] = settings
            self.task_updates += 1

    def _wake(self) -> None:
        self._poke.set()
        self._poke = trio.Event()
