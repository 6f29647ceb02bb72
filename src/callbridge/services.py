"""The long-lived objects one daemon shares between its web routes and its calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import httpx
import trio

from callbridge.calls.supervisor import CallSupervisor
from callbridge.config import Config

__all__ = ["Services", "open_services"]


@attrs.define
class Services:
    config: Config
    http: httpx.AsyncClient
    supervisor: CallSupervisor


@asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    """Resource handling: closes the HTTP client and ends every call on exit."""
    async with (
        httpx.AsyncClient(timeout=config.twilio.request_timeout_s) as http,
        trio.open_nursery() as nursery,
    ):
        supervisor = CallSupervisor(config)
        await nursery.start(supervisor.run)
        try:
            yield Services(config=config, http=http, supervisor=supervisor)
        finally:
            nursery.cancel_scope.cancel()
