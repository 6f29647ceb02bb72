"""Admission: the local count, and cluster-wide slots that are atomic and expire with their owner."""

from __future__ import annotations

import random

import trio

from callbridge.cluster import LocalAdmission, RedisAdmission
from callbridge.cluster.redis_client import RedisAdapter

from .helpers import adapter


class TestLocal:
    async def test_the_supervisors_rule_limit_repeat_release(self) -> None:
        admission = LocalAdmission(2)
        assert await admission.reserve("a") and await admission.reserve("b")
        assert not await admission.reserve("c")
        assert await admission.reserve("a")  # a repeated webhook keeps its slot
        await admission.release("a")
        await admission.release("nonexistent")
        assert await admission.reserve("c")
        assert admission.held == {"b", "c"}


def _admission(
    r: RedisAdapter, prefix: str, instance: str, max_calls: int, ttl_s: float
) -> RedisAdmission:
    return RedisAdmission(
        r, key=f"{prefix}:admission", instance_id=instance, max_calls=max_calls, ttl_s=ttl_s
    )


class TestRedis:
    async def test_many_concurrent_reservers_never_exceed_the_limit(
        self, redis_server: str, redis_prefix: str
    ) -> None:
        """4 instances x 50 tasks race for 10 slots; a holder is counted only while Redis says
        it holds one, so the peak of the count is a lower bound of Redis' own."""
        holding = peak = granted = 0

        async def reserver(admission: RedisAdmission, worker: int) -> None:
            nonlocal holding, peak, granted
            rng = random.Random(worker)
            for attempt in range(30):
                call_id = f"w{worker}-{attempt}"
                if await admission.reserve(call_id):
                    holding += 1
                    granted += 1
                    peak = max(peak, holding)
                    await trio.sleep(rng.uniform(0, 0.004))
                    holding -= 1
                    await admission.release(call_id)

        with trio.fail_after(60):
            async with (
                adapter(redis_server, redis_prefix, "i0") as r0,
                adapter(redis_server, redis_prefix, "i1") as r1,
                adapter(redis_server, redis_prefix, "i2") as r2,
                adapter(redis_server, redis_prefix, "i3") as r3,
                trio.open_nursery() as nursery,
            ):
                for n, r in enumerate((r0, r1, r2, r3)):
                    admission = _admission(r, redis_prefix, f"i{n}", 10, 30.0)
                    for worker in range(50):
                        nursery.start_soon(reserver, admission, n * 100 + worker)
            async with adapter(redis_server, redis_prefix) as r:
                left = await _admission(r, redis_prefix, "x", 10, 30.0).count()
        assert peak == 10  # the limit was reached, and never passed
        assert granted > 10
        assert left == 0

    async def test_a_dead_owners_slots_lapse_and_a_repeat_keeps_its_slot(
        self, redis_server: str, redis_prefix: str
    ) -> None:
        with trio.fail_after(20):
            async with adapter(redis_server, redis_prefix) as r:
                dead = _admission(r, redis_prefix, "dead", 2, 0.5)
                live = _admission(r, redis_prefix, "live", 2, 30.0)
                assert await dead.reserve("c1") and await dead.reserve("c2")
                assert await dead.reserve("c1")  # already held: still one slot
                assert not await live.reserve("c3")
                started = trio.current_time()
                # "dead" never renews: its slots lapse by the Redis clock.
                while not await live.reserve("c3"):
                    await trio.sleep(0.05)
                assert trio.current_time() - started >= 0.3
                assert sorted(await dead.renew()) == ["c1", "c2"]  # the owner learns it lost them
                assert dead.held == frozenset()
                assert await live.count() == 1

    async def test_renewal_keeps_slots_past_their_ttl(
        self, redis_server: str, redis_prefix: str
    ) -> None:
        with trio.fail_after(20):
            async with adapter(redis_server, redis_prefix) as r:
                owner = _admission(r, redis_prefix, "a", 1, 0.4)
                other = _admission(r, redis_prefix, "b", 1, 0.4)
                assert await owner.reserve("c1")
                for _ in range(6):
                    await trio.sleep(0.15)
                    assert await owner.renew() == []
                    assert not await other.reserve("c2")
                await owner.release("c1")
                assert await other.reserve("c2")
