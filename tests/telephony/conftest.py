"""Fixtures for the telephony tests: a config that points at a fake public URL and fake Twilio."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from callbridge.config import Config, Secret, ServerConfig, TwilioConfig

TOKEN = "12345"
ACCOUNT_SID = "AC" + "a" * 32
CALL_SID = "CA" + "b" * 32


def make_config(
    public_url: str = "https://bridge.example.com",
    *,
    token: str | None = TOKEN,
    validate: bool = True,
    api_base_url: str = "http://twilio.test",
    max_retries: int = 3,
    request_timeout_s: float = 10.0,
    account_sid: str = ACCOUNT_SID,
) -> Config:
    return Config(
        server=ServerConfig(public_url=public_url),
        twilio=TwilioConfig(
            account_sid=account_sid,
            auth_token=Secret(token) if token is not None else None,
            number="+15550000000",
            api_base_url=api_base_url,
            validate_signatures=validate,
            request_timeout_s=request_timeout_s,
            max_retries=max_retries,
        ),
    )


def sign(url: str, params: Iterable[tuple[str, str]] = (), token: str = TOKEN) -> str:
    """Twilio's algorithm written out independently of twilio-python: the URL, then each name
    (sorted) followed by its values (sorted, de-duplicated), HMAC-SHA1, base64."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    text = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


from tests.telephony.webhook_app import app, small_app  # noqa: E402, F401  (fixtures)
