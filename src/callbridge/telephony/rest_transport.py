"""twilio-python's async HTTP seam on trio: a shared ``httpx.AsyncClient`` with bounded retries.

twilio-python's stock async client is aiohttp, asyncio-only; ``TrioHttpClient`` implements its
``AsyncHttpClient`` contract over httpx, which runs on trio. It rewrites ``https://api.twilio.com``
to the configured base URL, bounds each attempt with a trio deadline, and retries 429, 5xx and
transport errors with exponential backoff (``Retry-After`` honoured), never repeating a create
Twilio may have acted on (see ``rest.py``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import time
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import trio
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from callbridge.errors import TwilioError
from callbridge.log import get_logger

__all__ = ["BACKOFF_BASE_S", "BACKOFF_MAX_S", "MAX_TOTAL_BACKOFF_S", "TrioHttpClient"]

log = get_logger("callbridge.telephony.rest")

# Backoff: 0.5 s, 1 s, 2 s, ... each capped at 8 s; all waits of one request at most 20 s, so a
# failing Twilio delays a hang-up or an operator call by bounded time.
BACKOFF_BASE_S: Final = 0.5
BACKOFF_MAX_S: Final = 8.0
MAX_TOTAL_BACKOFF_S: Final = 20.0
# Instance paths end in a SID (".../Calls/CA....json"): POSTs there are updates (idempotent);
# POSTs to a collection (".../Calls.json") create something.
_INSTANCE_PATH = re.compile(r"/[A-Z]{2}[0-9a-fA-F]{32}(\.json)?$")
_CONNECT_ERRORS: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@attrs.frozen
class _Failure:
    """One failed attempt. ``unprocessed``: Twilio cannot have acted on it, so even a create may
    be retried. ``response``: the last HTTP answer, for twilio-python to turn into its exception."""

    reason: str
    unprocessed: bool
    status: int | None = None
    code: int | None = None
    retry_after_s: float | None = None
    response: Response | None = attrs.field(default=None, eq=False)


class TrioHttpClient(AsyncHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """twilio-python's async HTTP seam over a shared ``httpx.AsyncClient``, with retries.

    Resource handling: the ``httpx.AsyncClient`` belongs to the caller, who closes it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        timeout_s: float,
        max_retries: int,
        rng: random.Random,
    ) -> None:
        super().__init__(
            logger=logging.getLogger("callbridge.telephony.twilio_http"),
            is_async=True,
            timeout=timeout_s,
        )
        self._http = http
        self._base = urlsplit(base_url.rstrip("/"))
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._rng = rng

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - twilio-python's signature; ours is config
        allow_redirects: bool = False,
    ) -> Response:
        method = method.upper()
        url = self._rebase(uri)
        idempotent = _is_idempotent(method, url)
        waited = 0.0
        for attempt in range(self._max_retries + 1):
            outcome = await self._attempt(
                method, url, params=params, data=data, headers=headers, auth=auth
            )
            if isinstance(outcome, Response):
                return outcome
            delay = self._retry_delay(outcome, attempt, waited, idempotent=idempotent)
            if delay is None:
                return self._give_up(outcome, method, url, attempt)
            log.info(
                "twilio_rest_retry",
                method=method,
                path=urlsplit(url).path,
                reason=outcome.reason,
                status=outcome.status,
                code=outcome.code,
                attempt=attempt + 1,
                delay_s=round(delay, 3),
            )
            await trio.sleep(delay)  # trio.sleep, so tests' MockClock skips the wait
            waited += delay
        msg = "unreachable: the retry loop always returns"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, object] | None,
        data: dict[str, object] | None,
        headers: dict[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> Response | _Failure:
        """One exchange: a ``Response`` to hand to twilio-python, or a ``_Failure``."""
        response: httpx.Response | None = None
        with trio.move_on_after(self._timeout_s):
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params or None,  # type: ignore[arg-type]
                    data=data or None,
                    headers=headers,
                    auth=auth,
                    timeout=self._timeout_s,
                    follow_redirects=False,
                )
            except _CONNECT_ERRORS as exc:
                return _Failure(f"connect failed: {type(exc).__name__}", unprocessed=True)
            except httpx.RequestError as exc:  # read/write errors, timeouts, bad encodings
                return _Failure(f"transport error: {type(exc).__name__}", unprocessed=False)
        if response is None:
            return _Failure(f"no answer within {self._timeout_s} s", unprocessed=False)
        if response.status_code == 429 or response.status_code >= 500:
            return _Failure(
                f"HTTP {response.status_code}",
                # 429 and 503 were refused before any work; other 5xx are ambiguous for creates.
                unprocessed=response.status_code in (429, 503),
                status=response.status_code,
                code=_error_code(response.text),
                retry_after_s=_retry_after_s(response.headers.get("Retry-After")),
                response=Response(response.status_code, response.text, response.headers),
            )
        return Response(response.status_code, response.text, response.headers)

    def _retry_delay(
        self, failure: _Failure, attempt: int, waited: float, *, idempotent: bool
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop."""
        if attempt >= self._max_retries or not (failure.unprocessed or idempotent):
            return None
        if failure.retry_after_s is not None:
            delay = failure.retry_after_s
        else:
            # Equal jitter: half fixed, half random, so concurrent calls do not retry in step.
            step = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
            delay = step / 2 + self._rng.uniform(0, step / 2)
        if waited + delay > MAX_TOTAL_BACKOFF_S:
            return None
        return delay

    def _give_up(self, failure: _Failure, method: str, url: str, attempt: int) -> Response:
        """Stop retrying: an HTTP failure goes to twilio-python to parse, a transport one raises."""
        if failure.response is not None:
            return failure.response
        log.warning(
            "twilio_rest_unreachable",
            method=method,
            path=urlsplit(url).path,
            reason=failure.reason,
            attempts=attempt + 1,
        )
        msg = f"Twilio REST {method} failed after {attempt + 1} attempt(s): {failure.reason}"
        raise TwilioError(msg)

    def _rebase(self, uri: str) -> str:
        parts = urlsplit(uri)
        path = self._base.path + parts.path
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))


def _is_idempotent(method: str, url: str) -> bool:
    if method in ("GET", "HEAD", "DELETE", "PUT"):
        return True
    return bool(_INSTANCE_PATH.search(urlsplit(url).path))


def _error_code(body: str) -> int | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return _as_int(payload.get("code")) if isinstance(payload, dict) else None


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _retry_after_s(header: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` when absent or bad."""
    if not header:
        return None
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < math.inf else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
