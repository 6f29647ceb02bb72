"""``open_cluster(config)``: this instance's part in the cluster, or the local stand-ins without one.

``Cluster`` carries the four seams the daemon uses:

- ``admission`` (``Admission``): reserve a call slot at the voice webhook, release at call end;
- ``operators`` (``routing.OperatorPool``): lease an operator (preferring the caller's language),
  release the number at call end;
- ``registry`` (``Registry`` or None): instances alive and dead, claims of a dead one's leftovers;
- ``feeds`` (``FeedSource`` or None): live transcript feeds shared by every instance.

With ``cluster.redis_url`` empty they are ``LocalAdmission``, ``routing.LanguageOperatorPool`` and
None:
exactly a single daemon. ``Cluster.run`` is the heartbeat task: announce this instance, renew its
slots and leases, and hand each dead instance to ``on_dead`` once (whoever claims it first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import attrs
import redis
import trio

from callbridge.cluster.admission import Admission, LocalAdmission, RedisAdmission
from callbridge.cluster.operators import RedisOperatorPool
from callbridge.cluster.redis_client import RedisAdapter, open_redis
from callbridge.cluster.registry import (
    DEAD_AFTER_HEARTBEATS,
    InstanceInfo,
    InstanceStatus,
    Registry,
)
from callbridge.cluster.streams import StreamFeeds
from callbridge.config import Config
from callbridge.log import get_logger
from callbridge.routing import LanguageOperatorPool, OperatorPool, operators_from_config

__all__ = ["Cluster", "DeadInstanceHandler", "open_cluster"]

log = get_logger("callbridge.cluster")

DeadInstanceHandler = Callable[[InstanceInfo], Awaitable[None]]
# Leaving the registry at shutdown must not hold the exit up when Redis is away.
_LEAVE_TIMEOUT_S: Final = 2.0


@attrs.define
class Cluster:
    """See the module docstring; build with ``open_cluster``."""

    instance_id: str
    heartbeat_s: float
    admission: Admission
    operators: OperatorPool
    registry: Registry | None = None
    feeds: StreamFeeds | None = None
    redis: RedisAdapter | None = None
    _reported_dead: set[str] = attrs.Factory(set)
    # Other instances alive and not draining, as of the last heartbeat.
    _ready_peers: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        return self.registry is not None

    def others_take_calls(self) -> bool:
        """Another instance was alive and not draining at the last heartbeat (so a draining
        instance can hand a new call back to the balancer); always False without a cluster."""
        return bool(self._ready_peers)

    async def run(
        self,
        status: Callable[[], InstanceStatus],
        on_dead: DeadInstanceHandler | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Heartbeat every ``cluster.heartbeat_s`` until cancelled (returns at once without a
        cluster). The first heartbeat is sent before ``task_status.started()``.

        ``status()`` reports load and draining. ``on_dead(info)`` runs for each dead instance
        this one claimed (exactly one survivor does), in a task of its own beside the heartbeat:
        ending a dead instance's calls at Twilio takes seconds, and a late heartbeat would make
        this instance look dead too. Without a handler, dead instances are only logged and left
        for a survivor that has one. Redis errors are logged and the loop goes on: slots and
        leases last ``DEAD_AFTER_HEARTBEATS`` heartbeats.
        """
        if self.registry is None:
            task_status.started()
            return
        async with trio.open_nursery() as takeovers:
            await self._beat(self.registry, status(), on_dead, takeovers)
            task_status.started()
            while True:
                await trio.sleep(self.heartbeat_s)
                await self._beat(self.registry, status(), on_dead, takeovers)

    async def _beat(
        self,
        registry: Registry,
        status: InstanceStatus,
        on_dead: DeadInstanceHandler | None,
        takeovers: trio.Nursery,
    ) -> None:
        try:
            await registry.heartbeat(status)
            for renew in (self.admission, self.operators):
                if isinstance(renew, RedisAdmission | RedisOperatorPool):
                    await renew.renew()
            instances = await registry.instances()
        except redis.RedisError as exc:
            log.error("cluster_heartbeat_failed", error=repr(exc))
            return
        self._ready_peers = frozenset(
            i.instance_id
            for i in instances
            if i.alive and not i.draining and i.instance_id != self.instance_id
        )
        for info in (i for i in instances if not i.alive):
            if on_dead is None:
                if info.instance_id not in self._reported_dead:
                    self._reported_dead.add(info.instance_id)
                    log.warning("cluster_instance_dead", instance=info.instance_id, claimed=False)
                continue
            takeovers.start_soon(self._take_over, registry, info, on_dead)

    async def _take_over(
        self, registry: Registry, info: InstanceInfo, on_dead: DeadInstanceHandler
    ) -> None:
        try:
            if not await registry.claim(info.instance_id):
                return  # another survivor got it (or this one, at an earlier heartbeat)
            log.warning("cluster_instance_dead", instance=info.instance_id, claimed=True)
            await on_dead(info)
        except Exception as exc:  # one failed takeover must not stop the heartbeat
            log.exception("cluster_takeover_failed", instance=info.instance_id, error=repr(exc))


def _redis_cluster(config: Config, adapter: RedisAdapter) -> Cluster:
    cc = config.cluster
    # One hash tag for every key: a future Redis Cluster keeps each script's keys in one slot.
    prefix = "{" + cc.key_prefix + "}"
    instance_id = config.instance_id
    ttl_s = cc.heartbeat_s * DEAD_AFTER_HEARTBEATS
    return Cluster(
        instance_id=instance_id,
        heartbeat_s=cc.heartbeat_s,
        admission=RedisAdmission(
            adapter,
            key=f"{prefix}:admission",
            instance_id=instance_id,
            max_calls=config.server.max_calls,
            ttl_s=ttl_s,
        ),
        operators=RedisOperatorPool(
            adapter,
            prefix=prefix,
            instance_id=instance_id,
            operators=operators_from_config(config),
            ttl_s=ttl_s,
        ),
        registry=Registry(
            adapter,
            prefix=prefix,
            instance_id=instance_id,
            instance_url=config.instance_url,
            heartbeat_s=cc.heartbeat_s,
        ),
        feeds=StreamFeeds(
            adapter,
            prefix=prefix,
            replay_events=config.transcripts.replay_events,
            subscriber_queue=config.transcripts.subscriber_queue,
        ),
        redis=adapter,
    )


@asynccontextmanager
async def open_cluster(config: Config) -> AsyncIterator[Cluster]:
    """This instance's ``Cluster`` for the ``async with`` block.

    Without ``cluster.redis_url``: the local stand-ins, nothing started. With it: Redis must
    answer (else ``redis.ConnectionError``/``redis.TimeoutError`` at start), the feeds' publisher
    and reader run in the block, and on exit this instance leaves the registry (bounded, so a
    lost Redis cannot hold the shutdown).
    """
    if not config.cluster.redis_url:
        yield Cluster(
            instance_id=config.instance_id,
            heartbeat_s=config.cluster.heartbeat_s,
            admission=LocalAdmission(config.server.max_calls),
            operators=LanguageOperatorPool.from_config(config),
        )
        return
    async with open_redis(config) as adapter, trio.open_nursery() as nursery:
        cluster = _redis_cluster(config, adapter)
        assert cluster.feeds is not None and cluster.registry is not None
        await nursery.start(cluster.feeds.run)
        log.info("cluster_joined", instance=cluster.instance_id, url=config.instance_url)
        try:
            yield cluster
        finally:
            cluster.feeds.close()
            with trio.CancelScope(shield=True), trio.move_on_after(_LEAVE_TIMEOUT_S):
                try:
                    await cluster.registry.leave()
                except redis.RedisError as exc:
                    log.warning("cluster_leave_failed", error=repr(exc))
            nursery.cancel_scope.cancel()
