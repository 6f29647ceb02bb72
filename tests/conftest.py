"""Shared fixtures: a clean environment and a reset structlog for every test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

# Throwaway PostgreSQL and Redis servers for the tests that need them.
pytest_plugins = ("tests.servers",)

# Variables that would leak a developer's real setup into tests.
_LEAKY_ENV = (
    "HOST",
    "PORT",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_NUMBER",
    "OPERATOR_NUMBER",
    "PALABRA_API_KEY",
    "PALABRA_CLIENT_ID",
    "PALABRA_CLIENT_SECRET",
    "SOURCE_LANGUAGE",
    "TARGET_LANGUAGE",
    "CALLBRIDGE_WEB_TOKEN",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name in _LEAKY_ENV or name.startswith("CALLBRIDGE_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers, root.level = handlers, level
