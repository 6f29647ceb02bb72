"""The real connector over loopback against the Palabra simulator: a whole link's life, from
connect to end_of_stream, leaves no socket behind (trio-websocket alone leaks one when the server
closes first)."""

from __future__ import annotations

import gc
import warnings

import httpx
import numpy as np
import pytest
import trio

from callbridge.config import load_config
from callbridge.errors import PalabraAuthError
from callbridge.palabra import open_palabra_link
from callbridge.roles import Direction
from callbridge.sim.palabra import SimOptions, serve_palabra_sim


async def start_sim(nursery: trio.Nursery) -> str:
    sim = await nursery.start(
        serve_palabra_sim, SimOptions(ready_delay_s=0.1, api_keys=("good-key",))
    )
    return str(sim.ws_url_template)


def config_for(template: str, key: str):  # type: ignore[no-untyped-def]
    return load_config(None, {"PALABRA_API_KEY": key, "CALLBRIDGE_PALABRA_STREAMING_URL": template})


def unclosed_sockets() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def test_link_lifecycle_leaves_no_socket_open(nursery: trio.Nursery) -> None:
    template = await start_sim(nursery)
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            async with open_palabra_link(
                config_for(template, "good-key"), Direction.CALLER_TO_OPERATOR, http
            ) as link:
                assert link.feed(np.zeros(2400, np.int16))
                await trio.sleep(0.1)
            assert link.stats.eos_received == 1
    assert unclosed_sockets() == []


async def test_refused_upgrade_leaves_no_socket_open(nursery: trio.Nursery) -> None:
    template = await start_sim(nursery)
    async with httpx.AsyncClient() as http:
        with pytest.raises(PalabraAuthError):
            async with open_palabra_link(
                config_for(template, "wrong-key"), Direction.CALLER_TO_OPERATOR, http
            ):
                pass
    assert unclosed_sockets() == []
