"""TwiML builders (golden outputs), URL helpers and <Say> language mapping."""

from __future__ import annotations

import pytest

from callbridge.telephony import twiml
from callbridge.telephony.languages import TWILIO_SAY_LANGUAGES, say_language

DECL = '<?xml version="1.0" encoding="UTF-8"?>'


class TestConnectStream:
    def test_golden_with_say(self) -> None:
        doc = twiml.connect_stream_twiml(
            say_text="Hello. Please hold.",
            say_lang="en",
            stream_url="wss://bridge.example.com/media/c1/caller",
            action_url="https://bridge.example.com/twiml/stream-ended/c1/caller",
            parameters={"call_id": "c1", "role": "caller"},
        )
        assert doc == (
            DECL + "<Response>"
            '<Say language="en-US">Hello. Please hold.</Say>'
            '<Connect action="https://bridge.example.com/twiml/stream-ended/c1/caller"'
            ' method="POST">'
            '<Stream url="wss://bridge.example.com/media/c1/caller">'
            '<Parameter name="call_id" value="c1" />'
            '<Parameter name="role" value="caller" />'
            "</Stream></Connect></Response>"
        )

    @pytest.mark.parametrize("say_text", [None, ""])
    def test_golden_without_say(self, say_text: str | None) -> None:
        doc = twiml.connect_stream_twiml(
            say_text=say_text,
            say_lang="es",
            stream_url="wss://b.example/media/c2/operator",
            action_url="https://b.example/twiml/stream-ended/c2/operator",
            parameters={"call_id": "c2", "role": "operator"},
        )
        assert doc == (
            DECL + "<Response>"
            '<Connect action="https://b.example/twiml/stream-ended/c2/operator" method="POST">'
            '<Stream url="wss://b.example/media/c2/operator">'
            '<Parameter name="call_id" value="c2" /><Parameter name="role" value="operator" />'
            "</Stream></Connect></Response>"
        )

    def test_text_is_escaped(self) -> None:
        doc = twiml.connect_stream_twiml(
            say_text='Tom & "Jerry" <3',
            say_lang="ru",
            stream_url="wss://b.example/media/c/caller",
            action_url="https://b.example/a?x=1&y=2",
            parameters={"k": 'v&"<'},
        )
        assert '<Say language="ru-RU">Tom &amp; "Jerry" &lt;3</Say>' in doc
        assert 'action="https://b.example/a?x=1&amp;y=2"' in doc
        assert '<Parameter name="k" value="v&amp;&quot;&lt;" />' in doc

    @pytest.mark.parametrize(
        "url",
        ["wss://b.example/media/c/caller?token=x", "https://b.example/media/c/caller", "wss:///p"],
    )
    def test_bad_stream_url(self, url: str) -> None:
        with pytest.raises(ValueError, match="Stream url"):
            twiml.connect_stream_twiml(
                say_text=None,
                say_lang="en",
                stream_url=url,
                action_url="https://b/a",
                parameters={},
            )

    def test_parameter_limit(self) -> None:
        ok = {"n": "v" * 498}
        twiml.connect_stream_twiml(
            say_text=None, say_lang="en", stream_url="wss://b/m", action_url="https://b/a",
            parameters=ok,
        )  # fmt: skip
        with pytest.raises(ValueError, match="under 500"):
            twiml.connect_stream_twiml(
                say_text=None, say_lang="en", stream_url="wss://b/m", action_url="https://b/a",
                parameters={"n": "v" * 499},
            )  # fmt: skip


def test_say_and_hangup_golden() -> None:
    assert twiml.say_and_hangup_twiml("Todas las líneas están ocupadas.", "es") == (
        DECL + '<Response><Say language="es-ES">Todas las líneas están ocupadas.</Say>'
        "<Hangup /></Response>"
    )


def test_hangup_golden() -> None:
    assert twiml.hangup_twiml() == DECL + "<Response><Hangup /></Response>"


class TestUrls:
    @pytest.mark.parametrize(
        ("public", "expected"),
        [
            ("https://bridge.example.com", "wss://bridge.example.com/media/c1/caller"),
            ("https://bridge.example.com/", "wss://bridge.example.com/media/c1/caller"),
            ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/media/c1/caller"),
            ("https://example.com/bridge", "wss://example.com/bridge/media/c1/caller"),
        ],
    )
    def test_media_stream_url(self, public: str, expected: str) -> None:
        assert twiml.media_stream_url(public, "c1", "caller") == expected

    def test_media_stream_url_quotes_segments(self) -> None:
        assert twiml.media_stream_url("https://b", "a/b?c", "caller") == (
            "wss://b/media/a%2Fb%3Fc/caller"
        )

    def test_bad_public_url(self) -> None:
        with pytest.raises(ValueError, match="http"):
            twiml.media_stream_url("ftp://b", "c1", "caller")

    def test_webhook_urls(self) -> None:
        base = "https://bridge.example.com/"
        assert twiml.operator_twiml_url(base, "c1") == (
            "https://bridge.example.com/twiml/operator/c1"
        )
        assert twiml.status_callback_url(base, "c1", "operator") == (
            "https://bridge.example.com/twilio/status/c1/operator"
        )
        assert twiml.stream_ended_url(base, "c1", "caller") == (
            "https://bridge.example.com/twiml/stream-ended/c1/caller"
        )


class TestSayLanguage:
    @pytest.mark.parametrize(
        ("lang", "expected"),
        [
            ("en", "en-US"),
            ("es", "es-ES"),
            ("ru", "ru-RU"),
            ("de", "de-DE"),
            ("fr", "fr-FR"),
            ("pt-BR", "pt-BR"),
            ("pt-br", "pt-BR"),
            ("pt_BR", "pt-BR"),
            ("pt", "pt-PT"),
            ("en-GB", "en-GB"),
            ("es-mx", "es-MX"),
            ("zh", "zh-CN"),
            ("zh-hant", "zh-TW"),
            ("ar-sa", "ar-AE"),
            ("ja", "ja-JP"),
            (" EN ", "en-US"),
            ("en-XX", "en-US"),  # unknown region: the language's default locale
            ("it-CH", "it-IT"),
            ("auto", "en-US"),
            ("", "en-US"),
            ("xx", "en-US"),
            ("klingon", "en-US"),
        ],
    )
    def test_mapping(self, lang: str, expected: str) -> None:
        assert say_language(lang) == expected

    def test_every_result_is_a_twilio_locale(self) -> None:
        for lang in ("en", "es", "ru", "zh-hant", "no", "iw", "tl", "cmn", "yue", "xx"):
            assert say_language(lang) in TWILIO_SAY_LANGUAGES

    def test_reexported_from_twiml(self) -> None:
        assert twiml.say_language("ru") == "ru-RU"
