"""The transcript web UI: pages, JSON API and live feeds (see ``routes``)."""

from __future__ import annotations

from callbridge.web.routes import create_web_blueprint

__all__ = ["create_web_blueprint"]
