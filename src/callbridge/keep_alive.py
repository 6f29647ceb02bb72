"""``IdleKeepAlive``: makes hypercorn's keep-alive timeout close idle connections to Quart-Trio.

Found with hypercorn 0.18 and quart-trio 0.12: an HTTP/1.1 client that keeps its connection open
after a response was never disconnected, so every idle client (a scraper, a proxy's pool, a
slowloris) held a socket and a task for as long as it liked. hypercorn arms its idle timer
(``keep_alive_timeout``, 5 s) from inside the app's final ``send`` of the response body, with
``nursery.start`` in the app's task. quart-trio cancels that task as soon as its message reader
sees the request end, and when the cancellation lands inside that ``start`` the timer is never
armed. Shielding the final body ``send`` lets hypercorn finish arming it; the send itself is
bounded (hypercorn shields its socket write the same way).
"""

from __future__ import annotations

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

__all__ = ["IdleKeepAlive"]


class IdleKeepAlive:
    """ASGI wrapper of ``app``: the last ``http.response.body`` of each response is sent under a
    shield from cancellation (see the module docstring). Anything else passes through."""

    def __init__(self, app: ASGIFramework) -> None:
        self._app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_last_body_shielded(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await self._app(scope, receive, send_last_body_shielded)
