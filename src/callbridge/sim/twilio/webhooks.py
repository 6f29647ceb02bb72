"""Signed HTTP requests from the fake Twilio to the app, and ordered/duplicated/reordered callbacks.

Every request is signed like Twilio does: ``X-Twilio-Signature`` = base64 HMAC-SHA1 over the exact
URL requested plus the sorted POST parameters (twilio ``RequestValidator.compute_signature``).
Signature faults (wrong token, no header) are applied here for webhooks and, through
:meth:`Signer.websocket_headers`, for the media WebSocket upgrade.
"""

from __future__ import annotations

import email.utils
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import trio
from twilio.request_validator import RequestValidator

from callbridge.log import get_logger
from callbridge.sim.twilio.scenario import Fault

__all__ = ["CallbackDispatcher", "Signer", "WebhookClient", "WebhookResult", "rfc2822_now"]

log = get_logger("callbridge.sim.twilio.webhooks")

MAX_BODY_RECORDED = 4000


def rfc2822_now() -> str:
    return email.utils.formatdate(time.time(), usegmt=False).replace("-0000", "+0000")


@attrs.define
class Signer:
    """Computes X-Twilio-Signature, applying the bad/missing signature fault switches."""

    auth_token: str
    faults: list[Fault] = attrs.field(factory=list)  # mutable: POST /_sim/faults adds more
    _used: dict[int, int] = attrs.field(factory=dict)  # fault index -> requests affected

    def headers(self, url: str, params: Mapping[str, str], *, channel: str) -> dict[str, str]:
        fault = self._active_fault(channel)
        if fault == "missing_signature":
            return {}
        token = "wrong-" + self.auth_token if fault == "bad_signature" else self.auth_token
        return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, dict(params))}

    def websocket_headers(self, url: str) -> list[tuple[bytes, bytes]]:
        # Twilio strips query strings from stream URLs; the upgrade is signed over the URL as
        # dialled (scheme included) with no parameters
        # (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
        return [
            (k.encode(), v.encode()) for k, v in self.headers(url, {}, channel="websocket").items()
        ]

    def _active_fault(self, channel: str) -> str | None:
        for i, f in enumerate(self.faults):
            if f.kind not in ("bad_signature", "missing_signature"):
                continue
            if f.target not in ("all", "webhooks" if channel == "webhook" else "websocket"):
                continue
            if f.times is not None and self._used.get(i, 0) >= f.times:
                continue
            self._used[i] = self._used.get(i, 0) + 1
            return f.kind
        return None


@attrs.frozen
class WebhookResult:
    status: int | None  # None: no HTTP answer (timeout or connection error)
    body: str
    error: str | None  # Twilio error code as text: "11205" timeout, "11200" connection


@attrs.define
class WebhookClient:
    """Sends signed form requests and records each one (the report's ``webhooks`` list)."""

    http: httpx.AsyncClient
    signer: Signer
    timeout_s: float
    log: list[dict[str, Any]] = attrs.field(factory=list)
    in_flight: int = 0
    _idle: trio.Event = attrs.field(factory=trio.Event)

    async def wait_idle(self) -> None:
        """Until no request is in flight (shutdown drains instead of cancelling requests)."""
        while self.in_flight:
            await self._idle.wait()

    async def request(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        kind: str,
        call_sid: str,
        method: str = "POST",
        extra_headers: Mapping[str, str] | None = None,
    ) -> WebhookResult:
        target = url
        if method == "GET":
            sep = "&" if urllib.parse.urlsplit(url).query else "?"
            target = url + sep + urllib.parse.urlencode(params)
            headers = self.signer.headers(target, {}, channel="webhook")
        else:
            headers = self.signer.headers(url, params, channel="webhook")
        headers.update(extra_headers or {})
        entry: dict[str, Any] = {
            "kind": kind,
            "call_sid": call_sid,
            "method": method,
            "url": target,
            "params": dict(params),
            "signed": "X-Twilio-Signature" in headers,
            "sent_at": time.time(),
        }
        self.log.append(entry)
        started = trio.current_time()
        self.in_flight += 1
        try:
            if method == "GET":
                response = await self.http.get(target, headers=headers, timeout=self.timeout_s)
            else:
                response = await self.http.post(
                    url, data=dict(params), headers=headers, timeout=self.timeout_s
                )
            result = WebhookResult(response.status_code, response.text, None)
        except httpx.TimeoutException:
            result = WebhookResult(None, "", "11205")
        except httpx.HTTPError as exc:
            log.warning("webhook_failed", url=url, kind=kind, error=type(exc).__name__)
            result = WebhookResult(None, "", "11200")
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
                self._idle = trio.Event()
        entry.update(
            status=result.status,
            latency_ms=round((trio.current_time() - started) * 1000, 1),
            response_body=result.body[:MAX_BODY_RECORDED],
            error=result.error,
        )
        return result


@attrs.frozen
class _Callback:
    url: str
    method: str
    params: dict[str, str]
    token: str  # I-Twilio-Idempotency-Token, identical on duplicates


@attrs.define
class CallbackDispatcher:
    """Delivers one call's status callbacks in order, or duplicated and/or pairwise reordered.

    Twilio sends each event as its own request and does not guarantee order; ``reorder`` holds a
    callback up to ``hold_s`` so the next one overtakes it (1,0,3,2,...), ``duplicate`` sends
    every callback twice with the same ``SequenceNumber`` and idempotency token.
    """

    client: WebhookClient
    call_sid: str
    duplicate: bool = False
    reorder: bool = False
    hold_s: float = 1.0
    done: trio.Event = attrs.field(factory=trio.Event)
    _send: trio.MemorySendChannel[_Callback] = attrs.field(init=False)
    _recv: trio.MemoryReceiveChannel[_Callback] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[_Callback](1000)

    def submit(self, url: str, params: dict[str, str], method: str = "POST") -> None:
        token = f"{self.call_sid}-{params.get('SequenceNumber', '')}-{secrets.token_hex(4)}"
        try:
            self._send.send_nowait(_Callback(url, method, params, token))
        except (trio.ClosedResourceError, trio.WouldBlock):
            log.warning("callback_dropped", call_sid=self.call_sid)

    def close(self) -> None:
        self._send.close()

    async def run(self) -> None:
        try:
            held: _Callback | None = None
            while True:
                item: _Callback | None = None
                with trio.move_on_after(self.hold_s if held is not None else float("inf")):
                    try:
                        item = await self._recv.receive()
                    except trio.EndOfChannel:
                        break
                if item is None:  # nothing overtook the held callback in time
                    assert held is not None
                    await self._deliver(held)
                    held = None
                elif self.reorder and held is None:
                    held = item
                else:
                    await self._deliver(item)
                    if held is not None:
                        await self._deliver(held)
                        held = None
            if held is not None:
                await self._deliver(held)
        finally:
            self.done.set()

    async def _deliver(self, cb: _Callback) -> None:
        for _ in range(2 if self.duplicate else 1):
            await self.client.request(
                cb.url,
                cb.params,
                kind="status_callback",
                call_sid=self.call_sid,
                method=cb.method,
                extra_headers={"I-Twilio-Idempotency-Token": cb.token},
            )
