"""The connector's TLS context is loaded once per process, not once per link."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from callbridge.config import load_config
from callbridge.palabra import transport


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ssl.SSLContext]]:
    """Every CA-bundle load, from a fresh cache (restored afterwards)."""
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting() -> ssl.SSLContext:
        made.append(real())
        return made[-1]

    transport.default_tls_context.cache_clear()
    monkeypatch.setattr(ssl, "create_default_context", counting)
    yield made
    transport.default_tls_context.cache_clear()


def test_links_share_one_tls_context(loads: list[ssl.SSLContext]) -> None:
    """Loading the CA bundle blocks the event loop for tens of ms; every link of every call
    made a connector, so each call start used to stall the other calls' audio."""
    config = load_config(None, {})
    for _ in range(4):
        transport.websocket_connector(config)
    assert len(loads) == 1
    assert transport.default_tls_context() is loads[0]
