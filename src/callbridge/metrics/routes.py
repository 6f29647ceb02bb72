"""The service's HTTP side: ``/readyz``, ``/metrics``, ``/favicon.ico``, and request counting.

- ``GET /readyz``: 200 ``{"status": "ready"}``, or 503 ``{"status": "not_ready", "reason":
  "draining" | "max_calls" | "store_not_writable", "detail": ...}``. No authentication, like
  ``/healthz``: a load balancer must reach it.
- ``GET /metrics`` on the main port: the Prometheus text format, behind the web token
  (``Authorization: Bearer``, or a logged-in page's cookie); 404 without ``CALLBRIDGE_WEB_TOKEN``.
  ``metrics.listen`` adds a separate listener (``serve_metrics``) that answers only ``/metrics``,
  without a token: keep it on loopback or a private network.
- Every HTTP request is counted by route rule and status (``callbridge_http_requests_total``).
"""

from __future__ import annotations

import logging
import socket
from importlib.resources import files
from typing import Final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from callbridge.config import Config
from callbridge.keep_alive import IdleKeepAlive
from callbridge.metrics.registry import Metrics
from callbridge.service.health import Readiness
from callbridge.web.auth import WebAuth

__all__ = ["create_service_blueprint", "metrics_app", "serve_metrics"]

FAVICON: Final = files("callbridge") / "assets" / "favicon.ico"
_UNMATCHED: Final = "unmatched"  # a 404 for a path no route has: one label, not one per path


def create_service_blueprint(config: Config, metrics: Metrics, readiness: Readiness) -> Blueprint:
    bp = Blueprint("service", __name__)
    token = config.server.web_token
    auth = WebAuth.from_secret(token) if token else None
    icon = FAVICON.read_bytes()

    @bp.get("/readyz")
    async def readyz() -> tuple[dict[str, object], int]:
        state = readiness.check()
        if state.ready:
            return {"status": "ready"}, 200
        return {"status": "not_ready", "reason": state.reason, "detail": state.detail}, 503

    @bp.get("/metrics")
    async def metrics_page() -> Response:
        if auth is None:
            return Response(
                "metrics need CALLBRIDGE_WEB_TOKEN, or their own listener (metrics.listen)\n",
                404,
                mimetype="text/plain",
            )
        if not auth.bearer_ok(request.headers.get("Authorization")):  # scrapers send a Bearer token
            return Response(
                "token required\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain"
            )
        return _exposition(metrics)

    @bp.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(icon, 200, {"Cache-Control": "public, max-age=86400"}, "image/x-icon")

    @bp.after_app_request
    async def count_request(response: Response) -> Response:
        rule = request.url_rule
        metrics.http_request(rule.rule if rule is not None else _UNMATCHED, response.status_code)
        return response

    return bp


def _exposition(metrics: Metrics) -> Response:
    body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    return Response(body, 200, {"Cache-Control": "no-store"}, content_type=content_type)


def metrics_app(metrics: Metrics) -> QuartTrio:
    app = QuartTrio("callbridge-metrics")

    @app.get("/metrics")
    async def metrics_page() -> Response:
        return _exposition(metrics)

    return app


async def serve_metrics(
    metrics: Metrics,
    sock: socket.socket,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` alone on ``sock`` (already bound) until ``shutdown`` is set."""
    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.fileno()}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 1.0
    await hypercorn_serve(
        IdleKeepAlive(metrics_app(metrics)),
        hc,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
