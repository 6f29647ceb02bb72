"""Admission: how many calls run at once, on one instance or across the cluster.

``Admission`` is the seam ``CallSupervisor.admit`` reserves through: ``LocalAdmission`` is today's
in-process count; ``RedisAdmission`` counts every instance's calls against one
``server.max_calls``, atomically (``scripts.RESERVE``), with each reservation expiring unless its
owner renews it, so a dead instance's slots free themselves within ``ttl_s``.
"""

from __future__ import annotations

from typing import Any, Protocol

import redis

from callbridge.cluster.redis_client import RedisAdapter
from callbridge.cluster.scripts import COUNT_LIVE, RENEW, RESERVE
from callbridge.log import get_logger

__all__ = ["Admission", "LocalAdmission", "RedisAdmission"]

log = get_logger("callbridge.cluster.admission")


class Admission(Protocol):
    async def reserve(self, call_id: str) -> bool:
        """Take a slot for ``call_id``; False when ``max_calls`` are taken. Reserving an id
        already held is True (a repeated webhook)."""

    async def release(self, call_id: str) -> None:
        """Give the slot back (call ended); releasing an id not held does nothing."""

    @property
    def held(self) -> frozenset[str]:
        """Call ids holding a slot through this instance."""


class LocalAdmission:
    """One instance's count, exactly ``CallSupervisor.admit``'s rule: ``len(calls) < max``."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self._held: set[str] = set()

    async def reserve(self, call_id: str) -> bool:
        if call_id in self._held:
            return True
        if len(self._held) >= self.max_calls:
            return False
        self._held.add(call_id)
        return True

    async def release(self, call_id: str) -> None:
        self._held.discard(call_id)

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)


class RedisAdmission:
    """Cluster-wide slots in the lease set ``key``; members are ``"{instance_id}/{call_id}"``.

    ``renew()`` (the registry heartbeat calls it) pushes every held slot's expiry to now +
    ``ttl_s``; a slot that lapsed anyway (Redis unreachable for longer than ``ttl_s``) is logged
    as ``admission_slot_lost`` and forgotten: its call goes on, and the cluster may briefly run
    one call over the limit.
    """

    def __init__(
        self, redis: RedisAdapter, *, key: str, instance_id: str, max_calls: int, ttl_s: float
    ) -> None:
        self._redis = redis
        self._key = key
        self._instance_id = instance_id
        self.max_calls = max_calls
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._reserve: Any = redis.script(RESERVE)
        self._renew: Any = redis.script(RENEW)
        self._count: Any = redis.script(COUNT_LIVE)
        self._held: set[str] = set()

    def _member(self, call_id: str) -> str:
        return f"{self._instance_id}/{call_id}"

    async def reserve(self, call_id: str) -> bool:
        """As ``Admission.reserve``; False also when Redis cannot be reached (logged
        ``admission_unavailable``): the caller hears the busy prompt, calls in progress go on."""
        args = [self.max_calls, self._ttl_ms, self._member(call_id)]
        try:
            taken = await self._redis.run(
                lambda c: self._reserve(keys=[self._key], args=args, client=c)
            )
        except redis.RedisError as exc:
            log.error("admission_unavailable", call_id=call_id, error=repr(exc))
            return False
        if taken:
            self._held.add(call_id)
        return bool(taken)

    async def release(self, call_id: str) -> None:
        """As ``Admission.release``; a Redis error is logged (``admission_release_failed``) and
        the slot lapses by itself after ``ttl_s``."""
        self._held.discard(call_id)
        member = self._member(call_id)
        try:
            await self._redis.run(lambda c: c.zrem(self._key, member))
        except redis.RedisError as exc:
            log.warning("admission_release_failed", call_id=call_id, error=repr(exc))

    async def renew(self) -> list[str]:
        """Renew every held slot; return (and forget) the call ids whose slot had lapsed."""
        if not self._held:
            return []
        members = [self._member(call_id) for call_id in self._held]
        lost: list[str] = await self._redis.run(
            lambda c: self._renew(keys=[self._key], args=[self._ttl_ms, *members], client=c)
        )
        prefix = f"{self._instance_id}/"
        lost_ids = [member.removeprefix(prefix) for member in lost]
        for call_id in lost_ids:
            self._held.discard(call_id)
            log.error("admission_slot_lost", call_id=call_id, ttl_ms=self._ttl_ms)
        return lost_ids

    async def count(self) -> int:
        """Slots held across the cluster now."""
        live: int = await self._redis.run(lambda c: self._count(keys=[self._key], client=c))
        return live

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)
