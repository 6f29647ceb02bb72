"""``AuthThrottle``: a per-client-address brake on failed authentication.

Every failed attempt (a wrong login token, a wrong Bearer token, a bad session cookie) is answered
``delay_s`` late. Guesses of the token itself (login form, Bearer) also spend one token of the
address's bucket: ``burst`` failures back to back, then one more every ``refill_s`` (a token
bucket; defaults 10, then 10 a minute). With the bucket empty, token checks from that address get
429 with ``Retry-After`` without being tried, so a guess that happens to be right is not
recognised either. A valid session cookie is always accepted: cookies are 128-bit random ids
under a 256-bit MAC, so nobody guesses one, and people behind the same proxy or NAT as a guesser
stay logged in.

Behind a reverse proxy every client has the proxy's address, so the bucket is shared: a guesser
then locks out token logins for everyone for about ``refill_s`` per guess, never sessions.

Resource handling: at most ``max_clients`` addresses are tracked; past that, full buckets are
forgotten first, then the oldest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs
import trio

from callbridge.log import get_logger

__all__ = ["AuthThrottle"]

_BURST: Final = 10
_REFILL_S: Final = 6.0
# A person who mistypes does not notice 0.5 s; a sequential guesser gets two tries a second.
_DELAY_S: Final = 0.5
_MAX_CLIENTS: Final = 10_000

log = get_logger("callbridge.web.throttle")


@attrs.define
class _Bucket:
    tokens: float
    updated_at: float


@attrs.define
class AuthThrottle:
    """Per-address failure budget; see the module docstring. ``clock`` is trio's (mockable)."""

    burst: int = _BURST
    refill_s: float = _REFILL_S
    delay_s: float = _DELAY_S
    max_clients: int = _MAX_CLIENTS
    clock: Callable[[], float] = trio.current_time
    failures: int = 0  # failed attempts seen, for metrics
    refusals: int = 0  # attempts refused untried (429)
    _buckets: dict[str, _Bucket] = attrs.Factory(dict)

    def retry_after(self, client: str) -> float:
        """0 when ``client`` may try a token now, else seconds until it may (and counts a
        refusal)."""
        bucket = self._refilled(client)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        self.refusals += 1
        return (1 - bucket.tokens) * self.refill_s

    async def failed(self, client: str, *, guess: bool) -> None:
        """Record a failed attempt from ``client`` and wait ``delay_s`` before it is answered.
        ``guess``: it tried the token (spends from the bucket); False for a bad cookie."""
        self.failures += 1
        if guess:
            bucket = self._refilled(client) or self._new(client)
            if bucket.tokens >= 1 > bucket.tokens - 1:
                # Logged once as the bucket empties, not for every refused attempt after.
                log.warning("web_auth_throttled", remote=client, burst=self.burst)
            bucket.tokens = max(bucket.tokens - 1, 0.0)
        await trio.sleep(self.delay_s)

    def _refilled(self, client: str) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        now = self.clock()
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated_at) / self.refill_s)
        bucket.updated_at = now
        return bucket

    def _new(self, client: str) -> _Bucket:
        if len(self._buckets) >= self.max_clients:
            self._forget()
        bucket = self._buckets[client] = _Bucket(float(self.burst), self.clock())
        return bucket

    def _forget(self) -> None:
        for client in list(self._buckets):
            bucket = self._refilled(client)
            if bucket is not None and bucket.tokens >= self.burst:
                del self._buckets[client]
        while len(self._buckets) >= self.max_clients:
            del self._buckets[next(iter(self._buckets))]
