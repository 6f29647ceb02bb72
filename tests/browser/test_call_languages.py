"""The pages say how each call's languages were chosen, and when a call is not translated."""

from __future__ import annotations

from typing import Any

import pytest

from callbridge.routing import LanguageSource

from .conftest import LiveServer
from .test_pages import expect, login, new_call

pytestmark = pytest.mark.browser


def test_languages_and_how_they_were_chosen(page: Any, server: LiveServer) -> None:
    login(page, server)
    detecting = new_call("detecting", caller_language="auto")
    detecting.caller_language_source = LanguageSource.DETECTED
    server.call_updated(detecting)
    card = page.locator("#active li")
    expect(card).to_have_count(1)
    expect(card.locator(".langs")).to_have_text("detecting… ⇄ ES")

    detecting.set_caller_language("ru", LanguageSource.DETECTED)
    server.call_updated(detecting)
    expect(card.locator(".langs")).to_have_text("RU (detected) ⇄ ES")

    same = new_call("same", caller_language="ru", operator_language="ru")
    same.caller_language_source = LanguageSource.PREFIX
    same.operator_language_source = LanguageSource.OPERATOR_SPEAKS
    server.call_updated(same)
    expect(page.locator("#active li")).to_have_count(2)
    expect(page.locator('#active li[data-call-id="same"] .langs')).to_have_text(
        "RU (by number) · no translation"
    )
    page.locator('#active li[data-call-id="same"] a').click()
    expect(page.locator("#langs")).to_have_text(
        "caller and operator both speak RU (by number): no translation"
    )
