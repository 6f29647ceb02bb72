"""The shared operator pool: one busy set across instances, preferring the caller's language."""

from __future__ import annotations

import trio

from callbridge.cluster import RedisOperatorPool
from callbridge.cluster.redis_client import RedisAdapter
from callbridge.routing import LanguageOperatorPool, LanguageSource, Operator

from .helpers import adapter

NUMBERS = ["+15550000001", "+15550000002", "+15550000003"]
TEAM = [
    Operator(NUMBERS[0], ("es",)),
    Operator(NUMBERS[1], ("en", "ru")),
    Operator(NUMBERS[2], ("es",)),
]


def _pool(
    r: RedisAdapter,
    prefix: str,
    instance: str,
    ttl_s: float = 30.0,
    operators: list[Operator] | None = None,
) -> RedisOperatorPool:
    team = operators or [Operator(n, ("es",)) for n in NUMBERS]
    return RedisOperatorPool(r, prefix=prefix, instance_id=instance, operators=team, ttl_s=ttl_s)


async def _number(pool: RedisOperatorPool, exclude: set[str], language: str | None = None) -> str:
    pick = await pool.acquire(exclude, language)
    assert pick is not None
    return pick.number


async def test_a_speaker_of_the_callers_language_is_taken_first_then_anyone(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            shared = _pool(r, redis_prefix, "a", operators=TEAM)
            local = LanguageOperatorPool(TEAM)
            # Russian: only NUMBERS[1] speaks it, untranslated; the plan is routing's own.
            pick = await shared.acquire(set(), "ru")
            assert pick == local.acquire_now(set(), "ru")
            assert pick is not None and pick.plan.operator_source is LanguageSource.OPERATOR_SPEAKS
            # Russian again: the speaker is busy, so any idle operator, translated to Spanish.
            other = await shared.acquire(set(), "ru")
            assert other is not None and other.number in (NUMBERS[0], NUMBERS[2])
            assert (other.plan.operator_language, other.plan.passthrough) == ("es", False)
            # English while the only English speaker is busy: the last idle one; then none.
            last = await shared.acquire(set(), "en")
            assert last is not None and {other.number, last.number} == {NUMBERS[0], NUMBERS[2]}
            assert await shared.acquire(set(), "en") is None
            await shared.release(NUMBERS[1])
            assert await _number(shared, set(), "en") == NUMBERS[1]


async def test_the_speakers_first_rule_respects_exclude_and_auto(
    redis_server: str, redis_prefix: str
) -> None:
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            shared = _pool(r, redis_prefix, "a", operators=TEAM)
            # The only Russian speaker was tried already: someone else, translated.
            assert await _number(shared, {NUMBERS[1]}, "ru") != NUMBERS[1]
            # "auto" (detection pending) prefers nobody; every idle number is a candidate.
            pick = await shared.acquire(set(), "auto")
            assert pick is not None and pick.plan.caller_language == "auto"


async def test_instances_racing_for_operators_never_share_one(
    redis_server: str, redis_prefix: str
) -> None:
    got: list[str] = []
    with trio.fail_after(20):
        async with (
            adapter(redis_server, redis_prefix, "a") as ra,
            adapter(redis_server, redis_prefix, "b") as rb,
        ):
            pools = [_pool(ra, redis_prefix, "a"), _pool(rb, redis_prefix, "b")]

            async def take(pool: RedisOperatorPool) -> None:
                pick = await pool.acquire(set())
                if pick is not None:
                    got.append(pick.number)

            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(take, pools[i % 2])
            assert sorted(got) == NUMBERS  # each once; the other 5 callers got None
            assert await pools[0].idle() == []
            # Only the leaseholder frees a number.
            held_by_a = next(n for n in NUMBERS if n in pools[0]._mine)
            await pools[1].release(held_by_a)
            assert await pools[1].acquire(set()) is None
            await pools[0].release(held_by_a)
            assert await pools[1].acquire({held_by_a}) is None  # excluded (already tried)
            assert await _number(pools[1], set()) == held_by_a


async def test_a_dead_instances_operators_come_back(redis_server: str, redis_prefix: str) -> None:
    with trio.fail_after(20):
        async with adapter(redis_server, redis_prefix) as r:
            dead, live = _pool(r, redis_prefix, "dead", ttl_s=0.4), _pool(r, redis_prefix, "live")
            for _ in NUMBERS:
                assert await dead.acquire(set()) is not None
            assert await live.acquire(set()) is None
            while (pick := await live.acquire(set())) is None:
                await trio.sleep(0.05)
            assert pick.number in NUMBERS
            lost = await dead.renew()
            assert sorted(lost) == NUMBERS  # all lapsed; one is now live's
