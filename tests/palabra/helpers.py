from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from callbridge.config import (
    Config,
    DirectionOverrides,
    LanguagesConfig,
    MediaConfig,
    PalabraConfig,
    Secret,
)
from callbridge.palabra import PalabraLink, TaskSettings, open_palabra_link
from callbridge.roles import Direction
from tests.palabra.fake_server import FakePalabra

API_BASE = "http://fake-rest.palabra"


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


__all__ = ["API_BASE", "make_config", "open_link"]
