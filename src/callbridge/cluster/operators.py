"""The operator pool: which operator number the next call dials, never one already on a call.

``OperatorPool`` is the seam: ``LocalOperatorPool`` is today's ``calls.supervisor.OperatorPool``
(round-robin over the configured numbers, skipping busy and excluded ones) behind async methods;
``RedisOperatorPool`` shares the busy set across instances, so an operator on a call at one
instance is never dialled by another. Its leases expire unless renewed (``renew()``, from the
registry heartbeat), so a dead instance's operators come back by themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Set
from typing import Any, Protocol

from callbridge.cluster.redis_client import RedisAdapter
from callbridge.cluster.scripts import ACQUIRE_OPERATOR, RELEASE_OPERATOR, RENEW_OPERATORS
from callbridge.log import get_logger

__all__ = ["LocalOperatorPool", "OperatorPool", "RedisOperatorPool"]

log = get_logger("callbridge.cluster.operators")


class OperatorPool(Protocol):
    async def acquire(self, exclude: Set[str]) -> str | None:
        """The next idle number not in ``exclude``, now busy; None when there is none."""

    async def release(self, number: str) -> None:
        """``number`` is idle again (its call ended); a number not ours is left alone."""

    async def idle(self) -> list[str]:
        """Configured numbers not on a call, in configured order."""


class LocalOperatorPool:
    """One instance's pool: the semantics of ``calls.supervisor.OperatorPool``."""

    def __init__(self, numbers: list[str]) -> None:
        self._numbers = list(numbers)
        self._cursor = itertools.count()
        self._busy: set[str] = set()

    async def acquire(self, exclude: Set[str]) -> str | None:
        start = next(self._cursor)
        count = len(self._numbers)
        for offset in range(count):
            number = self._numbers[(start + offset) % count]
            if number not in self._busy and number not in exclude:
                self._busy.add(number)
                return number
        return None

    async def release(self, number: str) -> None:
        self._busy.discard(number)

    async def idle(self) -> list[str]:
        return [n for n in self._numbers if n not in self._busy]


class RedisOperatorPool:
    """Shared busy set: lease set ``{prefix}:operators:leases`` (number -> expiry ms), owners in
    ``…:owners`` (number -> instance id), round-robin cursor ``…:cursor``. One script
    (``scripts.ACQUIRE_OPERATOR``) picks and leases, so two instances never take one number."""

    def __init__(
        self,
        redis: RedisAdapter,
        *,
        prefix: str,
        instance_id: str,
        numbers: list[str],
        ttl_s: float,
    ) -> None:
        self._redis = redis
        self._keys = [f"{prefix}:operators:leases", f"{prefix}:operators:owners"]
        self._cursor_key = f"{prefix}:operators:cursor"
        self._owner = instance_id
        self._numbers = list(numbers)
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._acquire: Any = redis.script(ACQUIRE_OPERATOR)
        self._release: Any = redis.script(RELEASE_OPERATOR)
        self._renew: Any = redis.script(RENEW_OPERATORS)
        self._mine: set[str] = set()

    async def acquire(self, exclude: Set[str]) -> str | None:
        args = [self._ttl_ms, self._owner, len(self._numbers), *self._numbers, *sorted(exclude)]
        keys = [*self._keys, self._cursor_key]
        number: str | None = await self._redis.run(
            lambda c: self._acquire(keys=keys, args=args, client=c)
        )
        if number is not None:
            self._mine.add(number)
        return number

    async def release(self, number: str) -> None:
        self._mine.discard(number)
        await self._redis.run(
            lambda c: self._release(keys=self._keys, args=[self._owner, number], client=c)
        )

    async def renew(self) -> list[str]:
        """Renew our leases; return (and forget) numbers whose lease had lapsed."""
        if not self._mine:
            return []
        args = [self._ttl_ms, self._owner, *sorted(self._mine)]
        lost: list[str] = await self._redis.run(
            lambda c: self._renew(keys=self._keys, args=args, client=c)
        )
        for number in lost:
            self._mine.discard(number)
            log.error("operator_lease_lost", operator_number=number, ttl_ms=self._ttl_ms)
        return lost

    async def idle(self) -> list[str]:
        def read(client: Any) -> list[str]:
            busy = client.zrangebyscore(self._keys[0], "(" + str(_server_ms(client)), "+inf")
            return [n for n in self._numbers if n not in set(busy)]

        return await self._redis.run(read)


def _server_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
