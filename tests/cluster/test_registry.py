"""Registry: heartbeats, death by silence, exactly one survivor claims the leftovers."""

from __future__ import annotations

import trio

from callbridge.cluster import InstanceInfo, InstanceStatus, Registry, open_cluster
from callbridge.cluster.redis_client import RedisAdapter

from .helpers import adapter, cluster_config


def _registry(r: RedisAdapter, prefix: str, instance: str, heartbeat_s: float) -> Registry:
    return Registry(
        r,
        prefix=prefix,
        instance_id=instance,
        instance_url=f"https://bridge.example.com/i/{instance}",
        heartbeat_s=heartbeat_s,
    )


async def test_heartbeat_announces_then_silence_is_death_claimed_once(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            a = _registry(r, redis_prefix, "a", heartbeat_s=0.1)
            b = _registry(r, redis_prefix, "b", heartbeat_s=10)
            await a.heartbeat(InstanceStatus(load=3, draining=True))
            await b.heartbeat(InstanceStatus(load=0, draining=False))
            [info_a, info_b] = await b.instances()
            assert (info_a.instance_id, info_a.load, info_a.draining, info_a.alive) == (
                "a",
                3,
                True,
                True,
            )
            assert info_a.instance_url == "https://bridge.example.com/i/a"
            assert info_a.version and info_b.alive
            assert not await b.claim("a")  # alive: not claimable
            while not await b.dead_instances():  # a stops beating: dead after 3 x 0.1 s
                await trio.sleep(0.05)
            claims = []

            async def claim() -> None:
                claims.append(await b.claim("a"))

            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(claim)
            assert claims.count(True) == 1
            assert [i.instance_id for i in await b.instances()] == ["b"]
            await b.leave()
            assert await b.instances() == []


async def test_a_restarting_instance_forces_the_claim_of_its_own_id(
    redis_server: str, redis_prefix: str
) -> None:
    async with adapter(redis_server, redis_prefix) as r:
        old = _registry(r, redis_prefix, "a", heartbeat_s=10)
        await old.heartbeat(InstanceStatus(load=1, draining=False))
        assert not await old.claim("a")
        assert await old.claim("a", force=True)
        assert not await old.claim("a", force=True)


async def test_cluster_run_hands_each_dead_instance_to_one_survivor(
    redis_server: str, redis_prefix: str
) -> None:
    taken: list[tuple[str, InstanceInfo]] = []
    status = InstanceStatus(load=0, draining=False)
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            doomed = _registry(r, "{" + redis_prefix + "}", "doomed", heartbeat_s=0.1)
            await doomed.heartbeat(InstanceStatus(load=2, draining=False))
        configs = [
            cluster_config(redis_server, redis_prefix, name, heartbeat_s=0.1)
            for name in ("s1", "s2")
        ]
        async with (
            open_cluster(configs[0]) as s1,
            open_cluster(configs[1]) as s2,
            trio.open_nursery() as nursery,
        ):
            for survivor in (s1, s2):

                async def on_dead(info: InstanceInfo, name: str = survivor.instance_id) -> None:
                    taken.append((name, info))

                await nursery.start(survivor.run, lambda: status, on_dead)
            while not taken:
                await trio.sleep(0.05)
            await trio.sleep(0.3)  # a few more heartbeats: nobody takes it again
            nursery.cancel_scope.cancel()
    [(_, info)] = taken
    assert (info.instance_id, info.load) == ("doomed", 2)
