"""The operator pool: today's round-robin locally, and one shared busy set across instances."""

from __future__ import annotations

import trio

from callbridge.cluster import LocalOperatorPool, RedisOperatorPool
from callbridge.cluster.redis_client import RedisAdapter
from callbridge.routing import LanguageOperatorPool, Operator

from .helpers import adapter

NUMBERS = ["+15550000001", "+15550000002", "+15550000003"]


def _pool(r: RedisAdapter, prefix: str, instance: str, ttl_s: float = 30.0) -> RedisOperatorPool:
    return RedisOperatorPool(r, prefix=prefix, instance_id=instance, numbers=NUMBERS, ttl_s=ttl_s)


async def test_local_pool_behaves_exactly_like_the_supervisors() -> None:
    ours = LocalOperatorPool(NUMBERS)
    theirs = LanguageOperatorPool([Operator(n, ("en",)) for n in NUMBERS])
    script = [("acquire", set()), ("acquire", {NUMBERS[2]}), ("release", NUMBERS[0])]
    script += [("acquire", set())] * 3 + [("release", NUMBERS[1]), ("acquire", {NUMBERS[1]})]
    for step, arg in script:
        if step == "acquire":
            assert isinstance(arg, set)
            pick = await theirs.acquire(arg)
            assert await ours.acquire(arg) == (pick.number if pick else None)
        else:
            assert isinstance(arg, str)
            await ours.release(arg)
            await theirs.release(arg)
        assert await ours.idle() == theirs.idle


async def test_instances_racing_for_operators_never_share_one(
    redis_server: str, redis_prefix: str
) -> None:
    got: list[str | None] = []
    with trio.fail_after(20):
        async with (
            adapter(redis_server, redis_prefix, "a") as ra,
            adapter(redis_server, redis_prefix, "b") as rb,
        ):
            pools = [_pool(ra, redis_prefix, "a"), _pool(rb, redis_prefix, "b")]

            async def take(pool: RedisOperatorPool) -> None:
                got.append(await pool.acquire(set()))

            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(take, pools[i % 2])
            taken = [n for n in got if n is not None]
            assert sorted(taken) == NUMBERS  # each once; the other 5 callers got None
            assert await pools[0].idle() == []
            # Only the leaseholder frees a number.
            held_by_a = next(n for n in NUMBERS if n in pools[0]._mine)
            await pools[1].release(held_by_a)
            assert await pools[1].acquire(set()) is None
            await pools[0].release(held_by_a)
            assert await pools[1].acquire({held_by_a}) is None  # excluded (already tried)
            assert await pools[1].acquire(set()) == held_by_a


async def test_a_dead_instances_operators_come_back(redis_server: str, redis_prefix: str) -> None:
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            dead, live = _pool(r, redis_prefix, "dead", ttl_s=0.4), _pool(r, redis_prefix, "live")
            for _ in NUMBERS:
                assert await dead.acquire(set()) is not None
            assert await live.acquire(set()) is None
            while (number := await live.acquire(set())) is None:
                await trio.sleep(0.05)
            assert number in NUMBERS
            lost = await dead.renew()
            assert sorted(lost) == NUMBERS  # all lapsed; one is now live's
