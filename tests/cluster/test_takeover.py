"""The heartbeat while a call holds cluster state: leases renewed, a slow takeover beside it."""

from __future__ import annotations

import trio

from callbridge.cluster import (
    InstanceInfo,
    InstanceStatus,
    RedisOperatorPool,
    open_cluster,
)
from callbridge.cluster.registry import DEAD_AFTER_HEARTBEATS

from .helpers import adapter, cluster_config
from .test_registry import _registry

NUMBERS = ["+15550000001"]
HEARTBEAT_S = 0.1
TTL_MS = round(HEARTBEAT_S * DEAD_AFTER_HEARTBEATS * 1000)
STATUS = InstanceStatus(load=1, draining=False)


async def _expiry(cluster_id: str, redis_server: str, prefix: str) -> int:
    async with adapter(redis_server, prefix, "watcher") as r:
        watcher = _registry(r, "{" + prefix + "}", "watcher", heartbeat_s=10)
        infos = {i.instance_id: i for i in await watcher.instances()}
        return infos[cluster_id].expires_at_ms if cluster_id in infos else 0


async def test_a_held_operator_stays_leased_past_its_ttl(
    redis_server: str, redis_prefix: str
) -> None:
    """The heartbeat renews the lease of a number a call holds: after several lease lifetimes
    another instance still cannot dial that operator."""
    config = cluster_config(
        redis_server, redis_prefix, "a", heartbeat_s=HEARTBEAT_S, numbers=NUMBERS
    )
    other = cluster_config(redis_server, redis_prefix, "b", heartbeat_s=10, numbers=NUMBERS)
    with trio.fail_after(30):
        async with open_cluster(config) as a, open_cluster(other) as b:
            assert isinstance(a.operators, RedisOperatorPool)
            pick = await a.operators.acquire(set(), "es")
            assert pick is not None and pick.number == NUMBERS[0]
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run, lambda: STATUS)
                first = await _expiry("a", redis_server, redis_prefix)
                # Event, not a timer: wait until the Redis clock has moved 3 lease lifetimes.
                while await _expiry("a", redis_server, redis_prefix) < first + 3 * TTL_MS:
                    await trio.sleep(HEARTBEAT_S)
                assert await b.operators.acquire(set(), "es") is None
                nursery.cancel_scope.cancel()


async def test_a_slow_takeover_does_not_hold_the_heartbeat(
    redis_server: str, redis_prefix: str
) -> None:
    """Ending a dead instance's calls at Twilio takes seconds; meanwhile the survivor keeps
    beating, so it never looks dead itself."""
    release = trio.Event()
    claimed: list[str] = []

    async def on_dead(info: InstanceInfo) -> None:
        claimed.append(info.instance_id)
        await release.wait()

    with trio.fail_after(30):
        async with adapter(redis_server, redis_prefix) as r:
            doomed = _registry(r, "{" + redis_prefix + "}", "doomed", heartbeat_s=HEARTBEAT_S)
            await doomed.heartbeat(InstanceStatus(load=2, draining=False))
        config = cluster_config(redis_server, redis_prefix, "s", heartbeat_s=HEARTBEAT_S)
        async with open_cluster(config) as survivor, trio.open_nursery() as nursery:
            await nursery.start(survivor.run, lambda: STATUS, on_dead)
            while not claimed:
                await trio.sleep(HEARTBEAT_S)
            taken_at = await _expiry("s", redis_server, redis_prefix)
            while await _expiry("s", redis_server, redis_prefix) < taken_at + 2 * TTL_MS:
                await trio.sleep(HEARTBEAT_S)  # the heartbeat goes on while on_dead waits
            assert claimed == ["doomed"]
            release.set()
            nursery.cancel_scope.cancel()


async def test_a_draining_instance_knows_whether_others_take_calls(
    redis_server: str, redis_prefix: str
) -> None:
    configs = [
        cluster_config(redis_server, redis_prefix, name, heartbeat_s=HEARTBEAT_S)
        for name in ("a", "b")
    ]
    b_status = InstanceStatus(load=0, draining=False)
    with trio.fail_after(30):
        async with (
            open_cluster(configs[0]) as a,
            open_cluster(configs[1]) as b,
            trio.open_nursery() as nursery,
        ):
            assert not a.others_take_calls()
            await nursery.start(a.run, lambda: InstanceStatus(load=1, draining=True))
            await nursery.start(b.run, lambda: b_status)
            while not a.others_take_calls():  # a's next heartbeat sees b
                await trio.sleep(HEARTBEAT_S)
            while b.others_take_calls():  # b sees a, but a drains: nobody else for b
                await trio.sleep(HEARTBEAT_S)
            b_status = InstanceStatus(load=0, draining=True)  # b drains too: nobody takes calls
            while a.others_take_calls():
                await trio.sleep(HEARTBEAT_S)
            nursery.cancel_scope.cancel()
