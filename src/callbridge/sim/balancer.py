"""``VoiceBalancer``: the load balancer in front of a simulated cluster, for the voice webhook only.

In cluster mode Twilio requests the number's voice webhook (and its language menu) at the shared
``server.public_url``, which a proxy spreads over the instances (docs/cluster.md shows nginx);
everything else about a call goes straight to its owner's ``cluster.instance_url``. This is that
proxy for tests and benchmarks on loopback: a threaded HTTP server that forwards each POST,
unchanged (body, ``X-Twilio-Signature``), to the next instance in round-robin order whose
``/readyz`` answers 200 (a draining instance answers 503 and is skipped, as a health-checked
upstream would be), and returns that instance's answer; with ``check_ready = False`` it is a plain
round-robin proxy (nginx without health checks), and a draining instance hands calls back itself
(``<Redirect>``). ``pin(index)`` sends every request to one instance (a test that needs a call on
a given instance); ``routed`` records who got what.

Resource handling: ``start()`` runs the server in a daemon thread; ``close()`` shuts it down and
joins it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx

__all__ = ["VoiceBalancer"]

# Twilio waits 15 s for a webhook's answer; the forwarded request may take as long.
_FORWARD_TIMEOUT_S = 15.0
_READY_TIMEOUT_S = 2.0


class VoiceBalancer:
    """See the module docstring. ``backends``: base URLs (``http://127.0.0.1:8001``)."""

    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = list(backends)
        self.routed: list[tuple[str, int]] = []  # (CallSid, backend index) per forwarded request
        self._lock = threading.Lock()
        self._next = 0
        self._pinned: int | None = None
        self.check_ready = True
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def pin(self, index: int | None) -> None:
        """Send every request to backend ``index`` (``None``: round-robin again)."""
        self._pinned = index

    def _order(self) -> list[int]:
        with self._lock:
            if self._pinned is not None:
                return [self._pinned]
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        return [(start + k) % len(self.backends) for k in range(len(self.backends))]

    def _ready(self, index: int) -> bool:
        try:
            answer = httpx.get(self.backends[index] + "/readyz", timeout=_READY_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def forward(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        """``(status, body, content type)`` of the first ready backend's answer; 503 if none."""
        for index in self._order():
            if self._pinned is None and self.check_ready and not self._ready(index):
                continue
            try:
                answer = httpx.post(
                    self.backends[index] + path,
                    content=body,
                    headers=headers,
                    timeout=_FORWARD_TIMEOUT_S,
                )
            except httpx.HTTPError:
                continue
            sid = parse_qs(body.decode("utf-8", "replace")).get("CallSid", [""])[0]
            with self._lock:
                self.routed.append((sid, index))
            return answer.status_code, answer.content, answer.headers.get("content-type", "")
        return 503, b"no instance ready\n", "text/plain"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                keep = ("Content-Type", "X-Twilio-Signature", "I-Twilio-Idempotency-Token")
                headers = {k: v for k in keep if (v := self.headers.get(k)) is not None}
                status, answer, content_type = balancer.forward(self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Type", content_type or "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the instances log what they were asked."""

        return Handler
