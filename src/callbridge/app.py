"""``create_asgi``: what the daemon serves; ``create_app``: its Quart-Trio part (webhooks, pages,
health, metrics). Media WebSockets bypass the framework (``telephony.media_socket``)."""

from __future__ import annotations

import trio
from quart_trio import QuartTrio

from callbridge import __version__
from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.routes import create_service_blueprint
from callbridge.request_limits import DEFAULT_MAX_BODY_BYTES, LOGIN_LIMIT, RequestLimits
from callbridge.service.health import Readiness
from callbridge.services import Services
from callbridge.telephony.media_socket import MediaRoute
from callbridge.telephony.webhooks import TwilioWebhooks
from callbridge.web.routes import create_web_blueprint

__all__ = ["create_app", "create_asgi"]


def _task_count() -> int:
    """Every task in this trio run, the root included (a walk of the task tree: microseconds
    for the few hundred tasks of a busy daemon)."""
    count, pending = 0, [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        count += 1
        pending.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return count


def create_asgi(services: Services) -> MediaRoute:
    """What hypercorn serves: the media WebSockets as raw ASGI, everything else through Quart."""
    return MediaRoute(
        create_app(services), services.supervisor, services.signatures, services.counters
    )


def create_app(services: Services) -> QuartTrio:
    app = QuartTrio("callbridge")
    cluster, supervisor = services.cluster, services.supervisor
    webhooks = TwilioWebhooks(
        services.config,
        supervisor,
        services.signatures,
        services.counters,
        # A draining cluster instance hands new calls back to the balancer while others take them.
        handoff=(lambda: supervisor.draining and cluster.others_take_calls()) if cluster else None,
    )
    app.register_blueprint(webhooks.blueprint())

    app.register_blueprint(create_web_blueprint(services.transcripts, services.config))
    # /readyz, /metrics, /favicon.ico, and per-route request counts.
    readiness = Readiness(
        LiveDaemon(services.supervisor, services.transcripts), services.config.server.max_calls
    )
    app.register_blueprint(create_service_blueprint(services.config, services.metrics, readiness))

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {
            "status": "draining" if services.supervisor.draining else "ok",
            "version": __version__,
            "active_calls": services.supervisor.active_count,
            # Refused or malformed input since start, by kind (bad_signature, unknown_call, ...).
            "rejected": dict(services.counters),
            # Live trio tasks, for leak checks: back to its idle value once calls have ended.
            "tasks": _task_count(),
        }

    _limit_requests(app, services)
    return app


def _limit_requests(app: QuartTrio, services: Services) -> None:
    """Body and form caps (see ``callbridge.request_limits``): Quart's own limits where it honours
    them (any body, multipart parts), the middleware for the form routes and missing signatures."""
    app.config.update(
        MAX_CONTENT_LENGTH=DEFAULT_MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=LOGIN_LIMIT.max_bytes,
        MAX_FORM_PARTS=LOGIN_LIMIT.max_fields,
    )
    app.asgi_app = RequestLimits(  # type: ignore[method-assign]
        app.asgi_app,
        require_signature=services.signatures.enabled,
        counters=services.counters,
    )
