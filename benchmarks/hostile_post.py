"""How long one hostile POST blocks the event loop, without and with the request limits.

Run from the repo root: ``python -m benchmarks.hostile_post`` (``--fields`` to change the size).
Serves ``create_app`` with hypercorn on 127.0.0.1 (an ephemeral port), sends one unsigned POST of
``--fields`` tiny fields (``f=1234567&``, 10 bytes each: 1.6 million make the reported 16 MB) to
``/twiml/client`` from a thread with a plain socket, and meanwhile measures the loop's lag with a
task that sleeps 1 ms at a time (lag = how late each wake-up came). Prints the answer's status,
how long it took, and the worst and 99th-percentile lag, with no signature header and with a
forged one; "before" is the same app with the middleware removed and Quart's default limits
(16 MiB body) restored. Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from callbridge.app import create_app
from callbridge.config import Config, Secret, ServerConfig, TwilioConfig
from callbridge.services import open_services

_TICK_S = 0.001
_QUART_DEFAULTS = {
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "MAX_FORM_MEMORY_SIZE": 500_000,
    "MAX_FORM_PARTS": 1_000,
}


_FORGED = "X-Twilio-Signature: Zm9yZ2VkIHNpZ25hdHVyZQ==\r\n"
_CASES = (
    ("before, no signature", ""),
    ("before, forged signature", _FORGED),
    ("after, no signature", ""),
    ("after, forged signature", _FORGED),
)


def _body(fields: int) -> bytes:
    return b"&".join(b"f=%07d" % (n % 10_000_000) for n in range(fields))


def _post(port: int, body: bytes, extra: str, result: dict[str, object]) -> None:
    """One POST over a plain socket, in a thread so sending costs the loop nothing."""
    start = time.perf_counter()
    head = (
        f"POST /twiml/client HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        with contextlib.suppress(OSError):  # refused early: closed while we were still sending
            sock.sendall(head + body)
        status = sock.recv(64).split(b" ", 2)[1:2]
    result["status"] = int(status[0]) if status else None
    result["seconds"] = time.perf_counter() - start


async def _lag_probe(lags: list[float], stop: trio.Event) -> None:
    while not stop.is_set():
        before = trio.current_time()
        await trio.sleep(_TICK_S)
        lags.append(trio.current_time() - before - _TICK_S)


async def _measure(app: QuartTrio, body: bytes, extra: str) -> dict[str, object]:
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = hc.errorlog = None
    stop_server, stop_probe = trio.Event(), trio.Event()
    lags: list[float] = []
    result: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn_serve(
                app, hc, shutdown_trigger=stop_server.wait, task_status=task_status
            )
        )
        port = int(binds[0].rsplit(":", 1)[1])
        nursery.start_soon(_lag_probe, lags, stop_probe)
        await trio.to_thread.run_sync(_post, port, body, extra, result)
        await trio.sleep(0.2)  # let any parsing still under way finish inside the probe
        stop_probe.set()
        stop_server.set()
    result["max_lag_ms"] = max(lags) * 1000
    result["p99_lag_ms"] = float(np.percentile(lags, 99)) * 1000
    return result


async def _run(fields: int) -> None:
    body = _body(fields)
    print(f"one unsigned POST /twiml/client: {fields:,} fields, {len(body) / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory() as state:
        config = Config(
            server=ServerConfig(state_dir=str(Path(state))),
            twilio=TwilioConfig(auth_token=Secret("bench-token")),
        )
        async with open_services(config) as services:
            for label, extra in _CASES:
                app = create_app(services)
                if label.startswith("before"):
                    del app.asgi_app  # the instance's middleware: back to Quart's own asgi_app
                    app.config.update(_QUART_DEFAULTS)
                r = await _measure(app, body, extra)
                print(
                    f"  {label:32}  status {r['status']}  answered in {r['seconds']:.2f} s  "
                    f"loop blocked: max {r['max_lag_ms']:.0f} ms, p99 {r['p99_lag_ms']:.1f} ms"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=1_600_000)
    args = parser.parse_args()
    trio.run(_run, args.fields)


if __name__ == "__main__":
    main()
