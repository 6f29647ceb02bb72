"""Auth modes and the legacy session REST against httpx.MockTransport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from callbridge.config import Config, PalabraConfig, Secret
from callbridge.errors import PalabraAuthError, PalabraUnavailable
from callbridge.palabra.auth import (
    api_key_url,
    auth_mode,
    create_session,
    delete_session,
    open_endpoint,
    redact_url,
    with_token,
)
from tests.palabra.fake_server import FakePalabra
from tests.palabra.helpers import make_config


def test_api_key_url_has_fresh_hash_and_token() -> None:
    base = "wss://x/streaming-api/{random_hash}/v1/speech-to-speech/stream"
    one, two = api_key_url(base, "k/y+"), api_key_url(base, "k/y+")
    assert one != two
    assert one.endswith("/v1/speech-to-speech/stream?token=k%2Fy%2B")
    assert "k%2Fy%2B" not in redact_url(one) and redact_url(one).endswith("?token=***")


def test_legacy_token_appended_to_ws_url() -> None:
    assert with_token("wss://h/stream", "p") == "wss://h/stream?token=p"
    assert with_token("wss://h/stream?a=1", "p") == "wss://h/stream?a=1&token=p"


def test_mode_chosen_by_secrets() -> None:
    assert (
        auth_mode(Config(palabra=PalabraConfig(api_key=Secret("k"), client_id=Secret("i"))))
        == "api_key"
    )
    legacy = Config(palabra=PalabraConfig(client_id=Secret("i"), client_secret=Secret("s")))
    assert auth_mode(legacy) == "legacy"
    with pytest.raises(PalabraAuthError, match="PALABRA_API_KEY"):
        auth_mode(Config())


async def test_api_key_endpoint_never_logs_the_key(autojump_clock: Any) -> None:
    fake = FakePalabra()
    async with (
        httpx.AsyncClient(transport=fake.transport()) as http,
        open_endpoint(make_config(fake), http) as endpoint,
    ):
        assert "token=test-key" in endpoint.url
        assert "test-key" not in endpoint.log_url and "test-key" not in repr(endpoint)


async def test_session_retries_5xx_and_transport_then_succeeds(autojump_clock: Any) -> None:
    fake = FakePalabra(rest_failures=[503, "transport", 502])
    config = make_config(fake, legacy=True)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        start = trio.current_time()
        session = await create_session(http, config)
        assert trio.current_time() - start == pytest.approx(0.5 + 1.0 + 2.0)
    assert (session.id, session.publisher) == ("session-0", "publisher-0")
    assert session.ws_url.startswith("ws://fake.palabra/streaming-api/")
    assert len(fake.rest_requests) == 4


async def test_session_retries_are_bounded(autojump_clock: Any) -> None:
    fake = FakePalabra(rest_failures=[500] * 10)
    config = make_config(fake, legacy=True, rest_retries=2)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(PalabraUnavailable, match="after 3 attempts: HTTP 500"):
            await create_session(http, config)
    assert len(fake.rest_requests) == 3


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_auth_statuses_never_retried(autojump_clock: Any, status: int) -> None:
    fake = FakePalabra(rest_failures=[status])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(PalabraAuthError, match=f"HTTP {status}") as caught:
            await create_session(http, make_config(fake, legacy=True))
    assert caught.value.status == status
    assert len(fake.rest_requests) == 1


async def test_other_4xx_is_unavailable_without_retry(autojump_clock: Any) -> None:
    fake = FakePalabra(rest_failures=[422])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(PalabraUnavailable, match="HTTP 422 injected"):
            await create_session(http, make_config(fake, legacy=True))
    assert len(fake.rest_requests) == 1


async def test_list_publisher_and_200_accepted(autojump_clock: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"ok": True, "data": {"publisher": ["p1"], "ws_url": "wss://h/s", "id": "s1"}}
        return httpx.Response(200, json=body)

    config = Config(palabra=PalabraConfig(client_id=Secret("i"), client_secret=Secret("s")))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        session = await create_session(http, config)
    assert (session.id, session.publisher, session.ws_url) == ("s1", "p1", "wss://h/s")


async def test_delete_never_raises(autojump_clock: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        msg = "down"
        raise httpx.ConnectError(msg, request=request)

    config = Config(palabra=PalabraConfig(client_id=Secret("i"), client_secret=Secret("s")))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await delete_session(http, config, "s1") is False


async def test_legacy_endpoint_deletes_on_error(autojump_clock: Any) -> None:
    fake = FakePalabra()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(RuntimeError):  # noqa: PT012 - the raise inside the context is the test
            async with open_endpoint(make_config(fake, legacy=True), http) as endpoint:
                assert endpoint.url.endswith("?token=publisher-0")
                raise RuntimeError
    assert fake.sessions_deleted == ["session-0"]


async def test_a_session_created_as_the_call_is_cancelled_is_still_deleted(
    autojump_clock: Any,
) -> None:
    fake = FakePalabra(reply_delay_s=1.0)  # Palabra creates the session; the reply is slow
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with trio.move_on_after(0.2):
            async with open_endpoint(make_config(fake, legacy=True), http):
                await trio.sleep_forever()
    assert fake.sessions_created == ["session-0"]
    assert fake.sessions_deleted == ["session-0"]
