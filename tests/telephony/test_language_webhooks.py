"""The caller's language at the voice webhooks: the number's prefix, the keypad menu and its
answer (``/twiml/client/language``), prompts said in the caller's and the operator's language."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from quart_trio import QuartTrio

from callbridge.config import Config
from callbridge.services import Services
from tests.calls.fakes import FakeControl
from tests.calls.harness import make_config
from tests.telephony.webhook_app import INCOMING, build_app, post, sign

MENU = "/twiml/client/language"
SPANISH_GREETING = "Hola. Espere mientras le conectamos con un operador. Su llamada será traducida."

App = tuple[QuartTrio, Services, FakeControl]


def with_languages(**languages: Any) -> Config:
    config = make_config()
    return attrs.evolve(config, languages=attrs.evolve(config.languages, **languages))


@pytest.fixture
async def menu_app(nursery: trio.Nursery) -> AsyncIterator[App]:
    config = with_languages(menu=["en", "es", "ru"], by_prefix={"+7": "ru"}, menu_timeout_s=4)
    async for built in build_app(nursery, config):
        yield built


async def webhook(app: QuartTrio, path: str, form: dict[str, str]) -> tuple[int, str]:
    response = await post(app, path, form, sign(path, form))
    return response.status_code, await response.get_data(as_text=True)


class TestMenu:
    async def test_a_caller_no_rule_answers_for_hears_the_menu_and_is_not_admitted_yet(
        self, menu_app: App
    ) -> None:
        app, services, _ = menu_app
        status, body = await webhook(app, "/twiml/client", INCOMING)
        assert status == 200
        assert body.count("<Gather") == 2 and 'timeout="4"' in body
        assert f"https://bridge.example.com{MENU}" in body
        assert '<Say language="es-ES">Para español, oprima 2.</Say>' in body
        assert "<Stream" not in body
        assert services.supervisor.active_count == 0

    async def test_pressing_2_admits_the_call_in_spanish(self, menu_app: App) -> None:
        app, services, _ = menu_app
        status, body = await webhook(app, MENU, {**INCOMING, "Digits": "2"})
        assert status == 200
        assert f'<Say language="es-ES">{SPANISH_GREETING}</Say>' in body
        assert "<Stream" in body
        (record,) = services.supervisor.active_records()
        assert (record.caller_language, record.caller_language_source) == ("es", "menu")

    @pytest.mark.parametrize("digits", ["", "9", "#"])
    async def test_no_key_or_a_key_not_offered_gives_the_default(
        self, menu_app: App, digits: str
    ) -> None:
        app, services, _ = menu_app
        form = {**INCOMING, "Digits": digits} if digits else dict(INCOMING)
        status, body = await webhook(app, MENU, form)
        assert status == 200 and "<Stream" in body and "<Gather" not in body
        (record,) = services.supervisor.active_records()
        assert (record.caller_language, record.caller_language_source) == ("en", "default")

    async def test_a_matching_prefix_skips_the_menu(self, menu_app: App) -> None:
        app, services, _ = menu_app
        status, body = await webhook(app, "/twiml/client", {**INCOMING, "From": "+74951234567"})
        assert status == 200 and "<Gather" not in body and "<Stream" in body
        assert '<Say language="ru-RU">' in body
        (record,) = services.supervisor.active_records()
        assert (record.caller_language, record.caller_language_source) == ("ru", "prefix")

    async def test_the_menus_answer_repeated_admits_one_call(self, menu_app: App) -> None:
        app, services, _ = menu_app
        form = {**INCOMING, "Digits": "3"}
        await webhook(app, MENU, form)
        await webhook(app, MENU, form)
        assert services.supervisor.active_count == 1

    async def test_unsigned_or_sidless_answers_are_refused(self, menu_app: App) -> None:
        app, services, _ = menu_app
        response = await post(app, MENU, {**INCOMING, "Digits": "2"}, None)
        assert response.status_code == 403
        form = {"From": "+15551112222", "Digits": "2"}
        status, body = await webhook(app, MENU, form)
        assert status == 200 and "<Hangup" in body  # Twilio runs the answer: TwiML, not a 400
        assert services.supervisor.active_count == 0
        assert services.counters["bad_request"] == 1

    async def test_without_a_menu_the_route_decides_by_the_other_rules(
        self, nursery: trio.Nursery
    ) -> None:
        async for app, services, _ in build_app(nursery, with_languages(caller="es")):
            status, body = await webhook(app, MENU, {**INCOMING, "Digits": "1"})
            assert status == 200 and SPANISH_GREETING in body
            (record,) = services.supervisor.active_records()
            assert record.caller_language_source == "default"


async def test_busy_prompt_is_said_in_the_callers_language(nursery: trio.Nursery) -> None:
    config = attrs.evolve(
        with_languages(by_prefix={"+34": "es"}),
        server=attrs.evolve(make_config().server, max_calls=1),
    )
    async for app, _, _ in build_app(nursery, config):
        await webhook(app, "/twiml/client", INCOMING)
        status, body = await webhook(
            app, "/twiml/client", {**INCOMING, "CallSid": "CA" + "e" * 32, "From": "+34600"}
        )
        assert status == 200
        assert '<Say language="es-ES">Todas las líneas están ocupadas.</Say><Hangup' in body
