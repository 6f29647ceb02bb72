"""Fixtures: the Palabra simulator in-process on 127.0.0.1 (real time, short delays)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from callbridge.sim.palabra import RunningSim, serve_palabra_sim
from tests.sim_palabra.helpers import fast_options

StartSim = Callable[..., Awaitable[RunningSim]]


@pytest.fixture
def start_sim(nursery: trio.Nursery) -> StartSim:
    async def start(**overrides: Any) -> RunningSim:
        sim: RunningSim = await nursery.start(serve_palabra_sim, fast_options(**overrides))
        return sim

    return start
