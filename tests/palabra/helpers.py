from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import trio

from callbridge.config import (
    Config,
    DirectionOverrides,
    LanguagesConfig,
    MediaConfig,
    PalabraConfig,
    Secret,
)
from callbridge.palabra import PalabraEvent, PalabraLink, TaskSettings, open_palabra_link
from callbridge.roles import Direction
from tests.palabra.fake_server import SAMPLE_RATE, FakePalabra

API_BASE = "http://fake-rest.palabra"
GUARD_S = 600  # mock-clock seconds; a hang fails the test instead of freezing it
FRAME = 480  # 20 ms at 24 kHz, what the Twilio side feeds


def speech(seconds: float, value: int = 1000) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.full(round(seconds * SAMPLE_RATE), value, dtype=np.int16)


async def feed_realtime(link: Any, seconds: float, frame: int = FRAME) -> None:
    """Feed non-silent audio in `frame`-sized pieces at real-time pace."""
    for _ in range(round(seconds * SAMPLE_RATE / frame)):
        assert link.feed(speech(frame / SAMPLE_RATE))
        await trio.sleep(frame / SAMPLE_RATE)


def received_nonzero_s(fake: FakePalabra) -> float:
    return sum(c.nonzero_samples for c in fake.connections) / SAMPLE_RATE


def too_fast(fake: FakePalabra) -> int:
    return sum(c.warnings_sent.count("AUDIO_STREAM_TOO_FAST") for c in fake.connections)


async def drain(link: Any) -> list[PalabraEvent]:
    events: list[PalabraEvent] = []
    while True:
        try:
            events.append(link.events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return events


def make_config(
    fake: FakePalabra,
    *,
    legacy: bool = False,
    languages: LanguagesConfig | None = None,
    media: MediaConfig | None = None,
    caller_to_operator: DirectionOverrides | None = None,
    **palabra: Any,
) -> Config:
    secrets: dict[str, Any]
    if legacy:
        secrets = {"client_id": Secret(fake.client_id), "client_secret": Secret(fake.client_secret)}
    else:
        secrets = {"api_key": Secret(fake.api_key)}
    extra: dict[str, Any] = {}
    # The fake answers no speech unless a test makes it (real Palabra transcribes what it gets),
    # so the output watchdog is off unless a test is about it.
    palabra.setdefault("output_stall_s", None)
    if caller_to_operator is not None:
        extra["caller_to_operator"] = caller_to_operator
    return Config(
        palabra=PalabraConfig(
            api_base_url=API_BASE, streaming_url=fake.streaming_url(), **secrets, **extra, **palabra
        ),
        languages=languages or LanguagesConfig(caller="en", operator="es"),
        media=media or MediaConfig(),
    )


@asynccontextmanager
async def open_link(
    fake: FakePalabra,
    config: Config,
    direction: Direction = Direction.CALLER_TO_OPERATOR,
    *,
    settings: TaskSettings | None = None,
) -> AsyncIterator[PalabraLink]:
    async with (
        httpx.AsyncClient(transport=fake.transport()) as http,
        open_palabra_link(
            config, direction, http, connect=fake.connector(), settings=settings
        ) as link,
    ):
        yield link


__all__ = [
    "API_BASE",
    "FRAME",
    "GUARD_S",
    "drain",
    "feed_realtime",
    "make_config",
    "open_link",
    "received_nonzero_s",
    "speech",
    "too_fast",
]
