"""Twilio's Calls REST API on trio: create, hang up, cancel, redirect and fetch calls.

twilio-python builds every request (form fields, repeated ``StatusCallbackEvent``, Basic auth,
headers) and parses every answer; its stock async client is aiohttp-only and fails under trio, so
``rest_transport.TrioHttpClient`` plugs a shared ``httpx.AsyncClient`` in underneath (twilio-python's ``AsyncHttpClient`` contract; its stock client is aiohttp, asyncio-only).
That client also:

- rewrites ``https://api.twilio.com`` to ``twilio.api_base_url`` (a simulator in tests). Rewriting
  scheme and host here, below twilio-python, also undoes any ``TWILIO_EDGE``/``TWILIO_REGION`` host
  rewriting, so the configured base URL always wins;
- bounds each attempt by ``twilio.request_timeout_s`` (a trio deadline over the whole exchange, not
  just httpx's per-phase timeouts);
- retries 429, 5xx and transport errors with exponential backoff, honouring ``Retry-After``, at most
  ``twilio.max_retries`` times and ``MAX_TOTAL_BACKOFF_S`` of waiting. Other 4xx are final.

Creating a call is not idempotent: a 500, a 502/504 or a timeout after the request went out may
mean the operator's phone is already ringing, and a retry would ring it twice. Creates are retried
only when Twilio cannot have acted: 429 (Twilio: "never processed"), 503, and failures to connect.

Errors: everything that fails for good is ``callbridge.errors.TwilioError`` with Twilio's HTTP
``status`` and error ``code`` (20404 unknown call, 21220 call not in progress, 20003 bad auth, ...).
Error codes are logged; the auth token and the ``Authorization`` header never are.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import attrs
import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from callbridge.config import Config
from callbridge.errors import TwilioError
from callbridge.log import get_logger
from callbridge.telephony.rest_transport import MAX_TOTAL_BACKOFF_S, TrioHttpClient

__all__ = [
    "ALREADY_ENDED_CODES",
    "DEFAULT_STATUS_EVENTS",
    "MAX_TOTAL_BACKOFF_S",
    "CallInfo",
    "TwilioRest",
]

log = get_logger("callbridge.telephony.rest")

DEFAULT_STATUS_EVENTS: Final = ("initiated", "ringing", "answered", "completed")
# 20404: the call is unknown (ended and gone); 21220: not in progress. Both mean "already over"
# for a hang-up (pipecat and public fixtures treat them so;
# https://www.twilio.com/docs/api/errors/20404, https://www.twilio.com/docs/api/errors/21220).
ALREADY_ENDED_CODES: Final = frozenset({20404, 21220})
# Twilio's inline TwiML limit (error 32018).
MAX_TWIML_CHARS: Final = 4000
# Call SIDs are CA + 32 hex; anything with other characters would change the request path.
_SID = re.compile(r"[A-Za-z0-9]{2,64}")

_T = TypeVar("_T")


@attrs.frozen
class CallInfo:
    sid: str
    status: str
    to: str
    from_: str


class TwilioRest:
    """The Calls API, used by the call state machine.

    Resource handling: ``http`` is shared and owned by the caller (one long-lived client, so TLS
    connections are reused across requests).

    Error handling: every method raises ``TwilioError`` when the request fails for good, except
    that ``hangup``/``cancel`` of a call that already ended succeed quietly.
    """

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        twilio = config.twilio
        self._account_sid = twilio.account_sid
        self._has_credentials = bool(twilio.account_sid and twilio.auth_token)
        token = twilio.auth_token.reveal() if twilio.auth_token else None
        self._http_client = TrioHttpClient(
            http,
            base_url=twilio.api_base_url,
            timeout_s=twilio.request_timeout_s,
            max_retries=twilio.max_retries,
            rng=random.Random(),  # jitter, not cryptography
        )
        self._client = Client(
            username=twilio.account_sid or None,
            password=token,
            account_sid=twilio.account_sid or None,
            http_client=self._http_client,
        )
        # twilio-python imports the Call resource's modules on first use: 60-100 ms (more on a
        # busy machine) that would otherwise block the event loop, and every live call's audio,
        # during the first call's dial. Take that cost here, at start-up.
        _ = self._client.calls

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        timeout_s: int,
    ) -> CallInfo:
        """Dial ``to`` from ``from_``; Twilio fetches ``url`` (POST) when the call is answered and
        POSTs ``status_callback`` for each of ``status_events``. ``timeout_s`` is the ring time."""
        call = await self._call(
            "create",
            None,
            lambda: self._client.calls.create_async(
                to=to,
                from_=from_,
                url=url,
                method="POST",
                status_callback=status_callback,
                status_callback_event=list(status_events),
                status_callback_method="POST",
                timeout=timeout_s,
            ),
        )
        info = _call_info(call)
        log.info("twilio_call_created", sid=info.sid, status=info.status)
        return info

    async def hangup(self, sid: str) -> None:
        """End the call whatever its state (``Status=completed``); an ended call is not an error."""
        try:
            await self._update(sid, "hangup", status="completed")
        except TwilioError as exc:
            if exc.code not in ALREADY_ENDED_CODES:
                raise
            log.debug("twilio_hangup_already_ended", sid=sid, code=exc.code)

    async def cancel(self, sid: str) -> None:
        """Stop a queued or ringing call (``Status=canceled``).

        ``canceled`` does nothing to an answered call (Twilio answers 200 with ``in-progress``), so
        a call that was answered meanwhile is hung up instead. An ended call is not an error.
        """
        try:
            call = await self._update(sid, "cancel", status="canceled")
        except TwilioError as exc:
            if exc.code == 20404:
                log.debug("twilio_cancel_already_ended", sid=sid, code=exc.code)
                return
            if exc.code != 21220:
                raise
            call = None
        if call is None or _call_info(call).status not in ("canceled", "completed"):
            await self.hangup(sid)

    async def update_twiml(self, sid: str, twiml: str) -> None:
        """Replace what a live call is running with ``twiml`` (at most 4000 characters)."""
        if len(twiml) > MAX_TWIML_CHARS:
            msg = f"inline TwiML is {len(twiml)} chars; Twilio allows {MAX_TWIML_CHARS}"
            raise TwilioError(msg)
        await self._update(sid, "update_twiml", twiml=twiml)

    async def fetch(self, sid: str) -> CallInfo:
        """The call's current state."""
        _check_sid(sid)
        call = await self._call("fetch", sid, lambda: self._client.calls(sid).fetch_async())
        return _call_info(call)

    async def _update(self, sid: str, operation: str, **fields: str) -> Any:
        _check_sid(sid)
        return await self._call(
            operation, sid, lambda: self._client.calls(sid).update_async(**fields)
        )

    async def _call(
        self, operation: str, sid: str | None, request: Callable[[], Awaitable[_T]]
    ) -> _T:
        """Run one twilio-python request, turning its exceptions into ``TwilioError``."""
        if not self._has_credentials:
            msg = "Twilio credentials are not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"
            raise TwilioError(msg)
        try:
            return await request()
        except TwilioRestException as exc:
            raise _logged(operation, sid, exc.msg, status=exc.status, code=exc.code) from exc
        except TwilioServiceException as exc:
            raise _logged(operation, sid, str(exc), status=exc.status, code=exc.code) from exc
        except (TwilioException, ValueError, KeyError) as exc:
            # A 2xx twilio-python could not parse (not JSON, missing fields).
            detail = f"bad response: {type(exc).__name__}"
            raise _logged(operation, sid, detail, status=None, code=None) from exc


def _logged(
    operation: str, sid: str | None, detail: str, *, status: int | None, code: int | None
) -> TwilioError:
    code = _as_int(code)
    status = _as_int(status)
    # Ending a call that already ended did what was asked (``hangup``/``cancel`` say so): no
    # warning for the end of every call whose other party hung up first.
    done = operation in ("hangup", "cancel") and code in ALREADY_ENDED_CODES
    # Twilio's messages name the request path (account SID, call SID), never the token.
    (log.info if done else log.warning)(
        "twilio_rest_error", operation=operation, sid=sid, status=status, code=code, detail=detail
    )
    return TwilioError(f"Twilio {operation} failed: {detail}", status=status, code=code)


def _call_info(call: Any) -> CallInfo:
    return CallInfo(
        sid=str(call.sid or ""),
        status=str(call.status or ""),
        to=str(call.to or ""),
        from_=str(call._from or ""),  # twilio-python's name for "from"
    )


def _check_sid(sid: str) -> None:
    if not _SID.fullmatch(sid):
        msg = f"invalid call SID {sid!r}"
        raise TwilioError(msg)


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
