"""``RedisAdapter``: redis-py's blocking client, run from trio in worker threads.

redis-py has no trio support (its AnyIO ports, redis/redis-py#3568 and #3647, were closed
unmerged), and the one trio-capable client, coredis 6, leaks a pool slot on every cancelled
blocking command. So every command runs in ``trio.to_thread.run_sync`` with this adapter's own
``CapacityLimiter`` (never trio's default one, which ``getaddrinfo`` shares), on a
``BlockingConnectionPool`` exactly as large as the limiter, so a thread never waits for a
connection.

Bounded: connect, read and write time out after ``cluster.command_timeout_s``; a connection error
is retried once (a Redis restart), a timeout is not (a Lua script must not run twice). Set
explicitly because redis-py 8 changed its defaults to 5 s and 10 retries (redis/redis-py#4082).
A cancelled command is waited for (``abandon_on_cancel=False``): it ends within the timeout, and
its pooled connection is never handed back mid-reply.

Replies use RESP2 with decoded strings, whatever the client version's default, so shapes are
stable (https://redis.io/docs/latest/develop/reference/protocol-spec/).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import redis
import trio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from callbridge.config import Config

__all__ = ["RedisAdapter", "open_redis"]

T = TypeVar("T")

# Concurrent short commands per instance (and pooled connections).
POOL_SIZE: Final = 16


def _client_kwargs(config: Config) -> dict[str, Any]:
    timeout = config.cluster.command_timeout_s
    password = config.cluster.redis_password
    return {
        "password": password.reveal() if password else None,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(
            ExponentialBackoff(cap=0.5, base=0.05), 1, supported_errors=(redis.ConnectionError,)
        ),
        "decode_responses": True,
        "protocol": 2,
        "client_name": f"callbridge:{config.instance_id}",
    }


class RedisAdapter:
    """Short Redis commands from trio; see the module docstring."""

    def __init__(self, config: Config) -> None:
        kwargs = _client_kwargs(config)
        pool = redis.BlockingConnectionPool.from_url(
            config.cluster.redis_url,
            max_connections=POOL_SIZE,
            timeout=config.cluster.command_timeout_s,
            **kwargs,
        )
        self._config = config
        self.client: redis.Redis = redis.Redis(connection_pool=pool)
        self.limiter = trio.CapacityLimiter(POOL_SIZE)

    async def run(self, command: Callable[[redis.Redis], T]) -> T:
        """``command(client)`` in a worker thread. Raises what redis-py raises
        (``redis.ConnectionError``, ``redis.TimeoutError``, ``redis.ResponseError``)."""
        return await trio.to_thread.run_sync(command, self.client, limiter=self.limiter)

    def script(self, source: str) -> Any:
        """A Lua script, called by EVALSHA with an EVAL fallback (redis-py ``register_script``).
        Call it inside ``run``: ``await r.run(lambda c: script(keys=[...], args=[...], client=c))``."""
        return self.client.register_script(source)

    def dedicated_client(self) -> redis.Redis:
        """A client on one connection of its own with no read timeout, for a blocking XREAD
        (whose BLOCK bounds it); never shared with short commands."""
        kwargs = _client_kwargs(self._config)
        kwargs["socket_timeout"] = None
        return redis.Redis.from_url(
            self._config.cluster.redis_url, single_connection_client=True, **kwargs
        )

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()


@asynccontextmanager
async def open_redis(config: Config) -> AsyncIterator[RedisAdapter]:
    """A ``RedisAdapter`` that answered PING; closed on exit.

    Raises ``redis.ConnectionError``/``redis.TimeoutError`` when Redis cannot be reached, so a
    misconfigured instance fails at start rather than at its first call."""
    adapter = RedisAdapter(config)
    try:
        await adapter.run(lambda c: c.ping())
        yield adapter
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(adapter.close)
