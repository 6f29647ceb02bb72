"""Browser test fixtures: the web UI on a real hypercorn server in a thread, and headless Chromium.

The server runs its own ``trio.run`` in a background thread (Playwright's sync API drives the
browser from the test thread); tests publish a simulated call's events into its hub through
``trio.from_thread``. ``restart()`` stops the server cleanly and starts a new one on the same port
and state directory: what a daemon restart looks like to a page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from callbridge.records import CallRecord
from callbridge.transcripts import TranscriptEvent, TranscriptHub, open_transcript_hub
from callbridge.web import create_web_blueprint

from ..transcripts.helpers import make_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class LiveServer:
    """The transcript web UI (blueprint + hub) served by hypercorn on 127.0.0.1."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = 0
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._hub: TranscriptHub | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            msg = f"server did not start: {self._error!r}"
            raise RuntimeError(msg)

    def stop(self) -> None:
        if self._thread is None:
            return
        assert self._token is not None and self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(15)
        assert not self._thread.is_alive(), "server did not stop"
        self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def publish(self, event: TranscriptEvent) -> None:
        assert self._token is not None and self._hub is not None
        trio.from_thread.run_sync(self._hub.publish, event, trio_token=self._token)

    def call_updated(self, record: CallRecord) -> None:
        assert self._token is not None and self._hub is not None
        trio.from_thread.run_sync(self._hub.call_updated, record, trio_token=self._token)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    async def _main(self) -> None:
        config = make_config(self.state_dir, heartbeat_s=2)
        async with open_transcript_hub(config) as hub, trio.open_nursery() as nursery:
            app = QuartTrio("callbridge-browser-test")
            app.register_blueprint(create_web_blueprint(hub, config))
            hc = HypercornConfig()
            hc.bind = [f"127.0.0.1:{self.port}"]
            hc.accesslog = hc.errorlog = None
            hc.graceful_timeout = 0.5
            self._stop, self._hub = trio.Event(), hub
            self._token = trio.lowlevel.current_trio_token()
            binds: list[str] = await nursery.start(
                partial(serve, app, hc, shutdown_trigger=self._stop.wait)
            )
            self.port = int(binds[0].rsplit(":", 1)[1])
            self._ready.set()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "state")
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
