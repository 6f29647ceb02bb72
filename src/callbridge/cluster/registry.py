"""``Registry``: which instances are alive, and who takes over a dead one's leftovers.

Each instance renews its member of the sorted set ``{prefix}:instances`` (score: expiry, Unix ms
from the Redis server's clock) every ``cluster.heartbeat_s``, with an expiry of
``DEAD_AFTER_HEARTBEATS`` heartbeats, and writes its ``InstanceInfo`` as JSON to
``{prefix}:instance:{id}``. An instance whose expiry has passed is dead. Its member stays in the
set until a survivor ``claim``s it: the claim script removes it, so exactly one survivor gets True
and handles the leftovers (its calls: end them at Twilio, mark them ``interrupted``). A clean
shutdown ``leave``s, so nobody claims a drained instance.
"""

from __future__ import annotations

import time
from typing import Any, Final

import attrs
import orjson

from callbridge import __version__
from callbridge.cluster.redis_client import RedisAdapter
from callbridge.cluster.scripts import CLAIM_INSTANCE, HEARTBEAT, LIST_INSTANCES

__all__ = ["DEAD_AFTER_HEARTBEATS", "InstanceInfo", "InstanceStatus", "Registry"]

# Missed heartbeats after which an instance is dead.
DEAD_AFTER_HEARTBEATS: Final = 3
# A dead instance's info stays readable this many heartbeats, for whoever claims it.
_INFO_KEPT_HEARTBEATS: Final = 100


@attrs.frozen
class InstanceStatus:
    """What an instance reports each heartbeat: live calls, and whether it is draining."""

    load: int
    draining: bool


@attrs.frozen
class InstanceInfo:
    """One instance as the registry knows it. ``expires_at_ms``: server clock, Unix ms."""

    instance_id: str
    instance_url: str
    version: str
    load: int
    draining: bool
    started_at: float
    expires_at_ms: int
    alive: bool


class Registry:
    """See the module docstring."""

    def __init__(
        self,
        redis: RedisAdapter,
        *,
        prefix: str,
        instance_id: str,
        instance_url: str,
        heartbeat_s: float,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._key = f"{prefix}:instances"
        self.instance_id = instance_id
        self.instance_url = instance_url
        self.heartbeat_s = heartbeat_s
        self._started_at = time.time()
        self._heartbeat: Any = redis.script(HEARTBEAT)
        self._list: Any = redis.script(LIST_INSTANCES)
        self._claim: Any = redis.script(CLAIM_INSTANCE)

    @property
    def ttl_ms(self) -> int:
        return round(self.heartbeat_s * DEAD_AFTER_HEARTBEATS * 1000)

    def _info_key(self, instance_id: str) -> str:
        return f"{self._prefix}:instance:{instance_id}"

    async def heartbeat(self, status: InstanceStatus) -> None:
        """Announce this instance alive for ``DEAD_AFTER_HEARTBEATS`` more heartbeats."""
        info = orjson.dumps(
            {
                "instance_url": self.instance_url,
                "version": __version__,
                "load": status.load,
                "draining": status.draining,
                "started_at": self._started_at,
            }
        )
        args = [self.instance_id, self.ttl_ms, info, round(self.ttl_ms * _INFO_KEPT_HEARTBEATS)]
        keys = [self._key, self._info_key(self.instance_id)]
        await self._redis.run(lambda c: self._heartbeat(keys=keys, args=args, client=c))

    async def instances(self) -> list[InstanceInfo]:
        """Every registered instance, alive or dead-not-yet-claimed, by id."""

        def read(client: Any) -> tuple[int, list[tuple[str, int]], list[str | None]]:
            flat = self._list(keys=[self._key], client=client)
            now, rest = int(flat[0]), flat[1:]
            members = [(str(rest[i]), int(float(rest[i + 1]))) for i in range(0, len(rest), 2)]
            infos = client.mget([self._info_key(m) for m, _ in members]) if members else []
            return now, members, infos

        now, members, infos = await self._redis.run(read)
        found = []
        for (instance_id, expires), raw in zip(members, infos, strict=True):
            info: dict[str, Any] = orjson.loads(raw) if raw else {}
            found.append(
                InstanceInfo(
                    instance_id=instance_id,
                    instance_url=str(info.get("instance_url", "")),
                    version=str(info.get("version", "")),
                    load=int(info.get("load", 0)),
                    draining=bool(info.get("draining", False)),
                    started_at=float(info.get("started_at", 0.0)),
                    expires_at_ms=expires,
                    alive=expires > now,
                )
            )
        return sorted(found, key=lambda i: i.instance_id)

    async def dead_instances(self) -> list[InstanceInfo]:
        """Instances that missed their heartbeats and nobody has claimed yet."""
        return [i for i in await self.instances() if not i.alive]

    async def claim(self, instance_id: str, *, force: bool = False) -> bool:
        """Take over a dead instance's leftovers: True for exactly one caller, False if it is
        alive, unknown, or claimed already. ``force`` claims it even alive: an instance
        restarting under its old id takes back its own leftovers before its first heartbeat."""
        keys = [self._key, self._info_key(instance_id)]
        args = [instance_id, "force" if force else ""]
        claimed = await self._redis.run(lambda c: self._claim(keys=keys, args=args, client=c))
        return bool(claimed)

    async def leave(self) -> None:
        """Deregister (clean shutdown): nobody will claim this instance."""
        info_key = self._info_key(self.instance_id)

        def remove(client: Any) -> None:
            with client.pipeline() as pipe:
                pipe.zrem(self._key, self.instance_id)
                pipe.delete(info_key)
                pipe.execute()

        await self._redis.run(remove)
