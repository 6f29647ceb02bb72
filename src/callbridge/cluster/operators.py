"""The shared operator pool: an operator on a call at one instance is never dialled by another.

``RedisOperatorPool`` implements ``routing.OperatorPool`` (the dialer's seam) across instances:
the busy set is a lease set in Redis, and one Lua script (``scripts.ACQUIRE_OPERATOR``) picks and
leases a number atomically, so two instances never take one number. Like the in-process
``routing.LanguageOperatorPool`` it prefers an idle operator who speaks the caller's language: the
script is asked first among those speakers, then, if none is idle, among every operator; the
``OperatorPick`` and its ``BridgePlan`` come from ``routing.plan_bridge``, the same decision the
single daemon makes. Without Redis, ``open_cluster`` hands out ``routing.LanguageOperatorPool``.

Leases expire unless renewed (``renew()``, from the registry heartbeat, while a call holds the
number), so a dead instance's operators come back by themselves after ``ttl_s``.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Any

import redis

from callbridge.cluster.redis_client import RedisAdapter
from callbridge.cluster.scripts import ACQUIRE_OPERATOR, RELEASE_OPERATOR, RENEW_OPERATORS
from callbridge.log import get_logger
from callbridge.routing import AUTO, Operator, OperatorPick, normalize, plan_bridge

__all__ = ["RedisOperatorPool"]

log = get_logger("callbridge.cluster.operators")


class RedisOperatorPool:
    """Shared busy set: lease set ``{prefix}:operators:leases`` (number -> expiry ms), owners in
    ``…:owners`` (number -> instance id), round-robin cursor ``…:cursor``."""

    def __init__(
        self,
        redis: RedisAdapter,
        *,
        prefix: str,
        instance_id: str,
        operators: Sequence[Operator],
        ttl_s: float,
    ) -> None:
        self._redis = redis
        self._keys = [f"{prefix}:operators:leases", f"{prefix}:operators:owners"]
        self._cursor_key = f"{prefix}:operators:cursor"
        self._owner = instance_id
        self._operators = {op.number: op for op in operators}
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._acquire: Any = redis.script(ACQUIRE_OPERATOR)
        self._release: Any = redis.script(RELEASE_OPERATOR)
        self._renew: Any = redis.script(RENEW_OPERATORS)
        self._mine: set[str] = set()

    @property
    def operators(self) -> tuple[Operator, ...]:
        return tuple(self._operators.values())

    @property
    def held(self) -> frozenset[str]:
        """Numbers this instance holds a lease on."""
        return frozenset(self._mine)

    async def acquire(
        self, exclude: Set[str], caller_language: str | None = None
    ) -> OperatorPick | None:
        """An idle operator not in ``exclude``, one who speaks ``caller_language`` first (``None``
        or ``"auto"``: no preference), now leased to this instance; None when all are busy, or
        when Redis cannot be reached (logged ``operator_pool_unavailable``: the call then ends
        ``no_operator`` with the apology rather than with a bug)."""
        language = normalize(caller_language) if caller_language else AUTO
        every = list(self._operators)
        speakers = [n for n in every if self._operators[n].speaking(language) is not None]
        try:
            number = await self._lease(speakers, exclude) if speakers else None
            if number is None and len(speakers) < len(every):
                number = await self._lease(every, exclude)
        except redis.RedisError as exc:
            log.error("operator_pool_unavailable", error=repr(exc))
            return None
        if number is None:
            return None
        operator = self._operators[number]
        return OperatorPick(operator, plan_bridge(language, operator))

    async def _lease(self, numbers: list[str], exclude: Set[str]) -> str | None:
        args = [self._ttl_ms, self._owner, len(numbers), *numbers, *sorted(exclude)]
        keys = [*self._keys, self._cursor_key]
        number: str | None = await self._redis.run(
            lambda c: self._acquire(keys=keys, args=args, client=c)
        )
        if number is not None:
            self._mine.add(number)
        return number

    async def release(self, number: str) -> None:
        """``number`` is idle again; a number leased by another instance is left alone. A Redis
        error is logged (``operator_release_failed``): the lease then lapses after ``ttl_s``."""
        self._mine.discard(number)
        try:
            await self._redis.run(
                lambda c: self._release(keys=self._keys, args=[self._owner, number], client=c)
            )
        except redis.RedisError as exc:
            log.warning("operator_release_failed", operator_number=number, error=repr(exc))

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
        """Configured numbers no instance holds, in configured order."""

        def read(client: Any) -> list[str]:
            busy = set(client.zrangebyscore(self._keys[0], "(" + str(_server_ms(client)), "+inf"))
            return [n for n in self._operators if n not in busy]

        return await self._redis.run(read)


def _server_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
