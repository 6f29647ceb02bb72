"""``create_app``: the Quart-Trio application: health, Twilio webhooks, media WebSockets, pages."""

from __future__ import annotations

from quart_trio import QuartTrio

from callbridge import __version__
from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.routes import create_service_blueprint
from callbridge.service.health import Readiness
from callbridge.services import Services
from callbridge.telephony.webhooks import TwilioWebhooks
from callbridge.web.routes import create_web_blueprint

__all__ = ["create_app"]


def create_app(services: Services) -> QuartTrio:
    app = QuartTrio("callbridge")
    webhooks = TwilioWebhooks(
        services.config, services.supervisor, services.signatures, services.counters
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
        }

    return app
