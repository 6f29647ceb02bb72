"""OperatorPool: round-robin over idle operator numbers."""

from __future__ import annotations

from callbridge.calls.operators import OperatorPool


def test_operator_pool_round_robins_idle_numbers() -> None:
    pool = OperatorPool(["a", "b", "c"])
    first = pool.acquire(set())
    second = pool.acquire(set())
    assert {first, second} <= {"a", "b", "c"}
    assert first != second
    assert pool.acquire({"a", "b", "c"}) is None
    pool.release("a")
    assert pool.idle.count("a") == 1
