"""The language-aware operator pool: round-robin, busy and excluded numbers, language preference,
and the bridge plan (passthrough or the pair to translate)."""

from __future__ import annotations

import pytest

from callbridge.config import Config, LanguagesConfig, OperatorEntry, OperatorsConfig
from callbridge.roles import Direction
from callbridge.routing import (
    BridgePlan,
    LanguageOperatorPool,
    LanguageSource,
    Operator,
    operators_from_config,
    plan_bridge,
)

ES = Operator("+1001", ("es", "en"), "Lucía")
RU = Operator("+1002", ("ru",))
EN = Operator("+1003", ("en",))


def pool(*operators: Operator) -> LanguageOperatorPool:
    return LanguageOperatorPool(operators or (ES, RU, EN))


class TestRoundRobin:
    """Today's OperatorPool semantics, kept."""

    def test_each_acquire_starts_one_further(self) -> None:
        p = pool()
        first = p.acquire_now(set())
        assert first is not None and first.number == "+1001"
        p.release_now("+1001")
        second = p.acquire_now(set())
        assert second is not None and second.number == "+1002"

    def test_busy_and_excluded_numbers_are_skipped(self) -> None:
        p = pool()
        taken = [p.acquire_now({"+1002"}) for _ in range(3)]
        assert [t.number if t else None for t in taken] == ["+1001", "+1003", None]
        assert p.idle == ["+1002"]

    def test_release_frees_and_unknown_release_is_ignored(self) -> None:
        p = pool(EN)
        assert p.acquire_now(set()) is not None
        assert p.acquire_now(set()) is None
        p.release_now("+9999")
        p.release_now("+1003")
        assert p.acquire_now(set()) is not None

    def test_empty_pool_gives_nothing(self) -> None:
        assert LanguageOperatorPool([]).acquire_now(set(), "en") is None


class TestLanguagePreference:
    def test_idle_speaker_of_the_callers_language_is_preferred(self) -> None:
        pick = pool().acquire_now(set(), "ru")
        assert pick is not None and pick.number == "+1002"
        assert pick.plan == BridgePlan("ru", "ru", LanguageSource.OPERATOR_SPEAKS)
        assert pick.plan.passthrough

    def test_second_language_counts_and_regional_variants_match(self) -> None:
        p = pool(RU, Operator("+1004", ("fr", "es-mx")))
        pick = p.acquire_now(set(), "es")
        assert pick is not None and pick.number == "+1004"
        assert pick.plan == BridgePlan("es", "es-mx", LanguageSource.OPERATOR_SPEAKS)

    def test_speakers_rotate_among_themselves(self) -> None:
        p = pool(ES, RU, EN)
        first = p.acquire_now(set(), "en")
        assert first is not None
        p.release_now(first.number)
        second = p.acquire_now(set(), "en")
        assert second is not None
        assert {first.number, second.number} == {"+1001", "+1003"}

    def test_no_idle_speaker_falls_back_to_any_idle_operator_translated(self) -> None:
        p = pool(ES, RU)
        pick = p.acquire_now({"+1002"}, "ru")
        assert pick is not None and pick.number == "+1001"
        assert pick.plan == BridgePlan("ru", "es", LanguageSource.DEFAULT)
        assert not pick.plan.passthrough

    def test_busy_speaker_is_not_taken(self) -> None:
        p = pool(RU, EN)
        assert p.acquire_now(set(), "ru") is not None
        pick = p.acquire_now(set(), "ru")
        assert pick is not None and pick.number == "+1003" and not pick.plan.passthrough

    @pytest.mark.parametrize("language", [None, "auto"])
    def test_unknown_caller_language_is_plain_round_robin(self, language: str | None) -> None:
        pick = pool().acquire_now(set(), language)
        assert pick is not None and pick.number == "+1001"
        assert pick.plan == BridgePlan("auto", "es", LanguageSource.DEFAULT)

    async def test_async_interface_matches(self) -> None:
        p = pool(RU)
        pick = await p.acquire(set(), "ru")
        assert pick is not None and pick.plan.passthrough
        await p.release("+1002")
        assert p.idle == ["+1002"]


class TestBridgePlan:
    def test_translated_pair_is_caller_and_operators_first_language(self) -> None:
        plan = plan_bridge("de", ES)
        assert plan.languages(Direction.CALLER_TO_OPERATOR) == ("de", "es")
        assert plan.languages(Direction.OPERATOR_TO_CALLER) == ("es", "de")

    def test_nobody_speaks_auto(self) -> None:
        assert not plan_bridge("auto", Operator("+1", ("auto",))).passthrough


class TestFromConfig:
    def test_team_then_plain_numbers_with_the_operator_language(self) -> None:
        config = Config(
            operators=OperatorsConfig(
                numbers=["+2001", "+1001"],
                team=[OperatorEntry("+1001", ["ES", "en"], "Lucía")],
            ),
            languages=LanguagesConfig(operator="fr"),
        )
        assert operators_from_config(config) == (
            Operator("+1001", ("es", "en"), "Lucía"),
            Operator("+2001", ("fr",)),
        )
