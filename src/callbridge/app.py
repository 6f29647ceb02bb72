"""``create_app``: the Quart-Trio application: health, Twilio webhooks, media WebSockets, pages."""

from __future__ import annotations

from quart_trio import QuartTrio

from callbridge import __version__
from callbridge.request_limits import DEFAULT_MAX_BODY_BYTES, LOGIN_LIMIT, RequestLimits
from callbridge.services import Services
from callbridge.telephony.webhooks import create_webhooks_blueprint
from callbridge.web.routes import create_web_blueprint

__all__ = ["create_app"]


def create_app(services: Services) -> QuartTrio:
    app = QuartTrio("callbridge")
    app.register_blueprint(
        create_webhooks_blueprint(
            services.config, services.supervisor, services.signatures, services.counters
        )
    )

    app.register_blueprint(create_web_blueprint(services.transcripts, services.config))

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {
            "status": "draining" if services.supervisor.draining else "ok",
            "version": __version__,
            "active_calls": services.supervisor.active_count,
            # Refused or malformed input since start, by kind (bad_signature, unknown_call, ...).
            "rejected": dict(services.counters),
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
