"""TwilioRest against httpx.MockTransport: wire format, errors, retries on a mock clock."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import attrs
import httpx
import pytest
import structlog
import trio

from callbridge.errors import TwilioError
from callbridge.log import configure_logging
from callbridge.telephony.rest import MAX_TOTAL_BACKOFF_S, CallInfo, TwilioRest

from .conftest import ACCOUNT_SID, CALL_SID, TOKEN, make_config

CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
CALL = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json"

Reply = httpx.Response | Exception | Callable[[httpx.Request], Any]


def call_json(status: str = "queued", sid: str = CALL_SID) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": "+15551110000",
        "from": "+15550000000",
        "status": status,
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
    }


def error(status: int, code: int, message: str = "error", **headers: str) -> httpx.Response:
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return httpx.Response(status, json=body, headers=headers)


@attrs.define
class FakeTwilio:
    """Answers requests from a script, one reply per request; records each request and when."""

    replies: list[Reply] = attrs.Factory(list)
    requests: list[httpx.Request] = attrs.Factory(list)
    times: list[float] = attrs.Factory(list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            result = reply(request)
            return await result if hasattr(result, "__await__") else result  # type: ignore[no-any-return]
        return reply

    def form(self, index: int = -1) -> list[tuple[str, str]]:
        return parse_qsl(self.requests[index].content.decode(), keep_blank_values=True)


@pytest.fixture
def fake() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
async def http(fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        yield client


def rest(http: httpx.AsyncClient, **kw: Any) -> TwilioRest:
    return TwilioRest(make_config(**kw), http)


def test_the_call_resource_is_loaded_at_start_up_not_on_the_first_dial() -> None:
    """twilio-python imports the Call resource's modules on first use, 60-100 ms on the event
    loop: the daemon takes that when it builds its REST client, before any call is live."""
    probe = (
        "import sys, httpx\n"
        "from callbridge.config import load_config\n"
        "from callbridge.telephony.rest import TwilioRest\n"
        "assert 'twilio.rest.api.v2010.account.call' not in sys.modules\n"
        "TwilioRest(load_config(None, {}), httpx.AsyncClient())\n"
        "print('twilio.rest.api.v2010.account.call' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True", done.stderr


class TestWireFormat:
    async def test_create_call(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(201, json=call_json("queued"))]
        with trio.fail_after(5):
            info = await rest(http).create_call(
                to="+15551110000",
                from_="+15550000000",
                url="https://bridge.example.com/twiml/operator/c1",
                status_callback="https://bridge.example.com/twilio/status/c1/operator",
                timeout_s=25,
            )
        assert info == CallInfo(
            sid=CALL_SID, status="queued", to="+15551110000", from_="+15550000000"
        )
        request = fake.requests[0]
        assert request.method == "POST"
        assert str(request.url) == "http://twilio.test" + CALLS
        assert sorted(fake.form()) == sorted(
            [
                ("To", "+15551110000"),
                ("From", "+15550000000"),
                ("Url", "https://bridge.example.com/twiml/operator/c1"),
                ("Method", "POST"),
                ("StatusCallback", "https://bridge.example.com/twilio/status/c1/operator"),
                ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "ringing"),
                ("StatusCallbackEvent", "answered"),
                ("StatusCallbackEvent", "completed"),
                ("StatusCallbackMethod", "POST"),
                ("Timeout", "25"),
            ]
        )
        events = [v for k, v in fake.form() if k == "StatusCallbackEvent"]
        assert events == ["initiated", "ringing", "answered", "completed"]
        expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{TOKEN}".encode()).decode()
        assert request.headers["Authorization"] == f"Basic {expected_auth}"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.headers["Accept"] == "application/json"

    async def test_create_call_custom_events(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        fake.replies = [httpx.Response(201, json=call_json())]
        await rest(http).create_call(
            to="+1", from_="+2", url="https://b/u", status_callback="https://b/s",
            status_events=("completed",), timeout_s=10,
        )  # fmt: skip
        assert [v for k, v in fake.form() if k == "StatusCallbackEvent"] == ["completed"]

    async def test_hangup(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(200, json=call_json("completed"))]
        await rest(http).hangup(CALL_SID)
        assert fake.requests[0].method == "POST"
        assert fake.requests[0].url.path == CALL
        assert fake.form() == [("Status", "completed")]

    async def test_update_twiml(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(200, json=call_json("in-progress"))]
        doc = "<Response><Say>Bye &amp; thanks</Say><Hangup/></Response>"
        await rest(http).update_twiml(CALL_SID, doc)
        assert fake.requests[0].url.path == CALL
        assert fake.form() == [("Twiml", doc)]

    async def test_update_twiml_too_long(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        with pytest.raises(TwilioError, match="4000"):
            await rest(http).update_twiml(CALL_SID, "<Response>" + "x" * 4000 + "</Response>")
        assert fake.requests == []

    async def test_fetch(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(200, json=call_json("ringing"))]
        info = await rest(http).fetch(CALL_SID)
        assert info.status == "ringing"
        assert info.from_ == "+15550000000"
        assert fake.requests[0].method == "GET"
        assert fake.requests[0].url.path == CALL
        assert fake.requests[0].content == b""

    async def test_base_url_with_path_prefix(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        fake.replies = [httpx.Response(200, json=call_json())]
        await rest(http, api_base_url="http://127.0.0.1:9/fake/").fetch(CALL_SID)
        assert str(fake.requests[0].url) == "http://127.0.0.1:9/fake" + CALL

    async def test_edge_environment_does_not_move_requests(
        self, fake: FakeTwilio, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """TWILIO_EDGE/REGION rewrite twilio-python's hostnames; the configured base still wins."""
        monkeypatch.setenv("TWILIO_EDGE", "sydney")
        monkeypatch.setenv("TWILIO_REGION", "au1")
        fake.replies = [httpx.Response(200, json=call_json())]
        await rest(http).fetch(CALL_SID)
        assert fake.requests[0].url.host == "twilio.test"

    async def test_missing_credentials(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        with pytest.raises(TwilioError, match="credentials"):
            await rest(http, token=None).fetch(CALL_SID)
        with pytest.raises(TwilioError, match="credentials"):
            await rest(http, account_sid="").hangup(CALL_SID)
        assert fake.requests == []

    @pytest.mark.parametrize("sid", ["", "CA/../x", "CA1?x=1", "CA 1"])
    async def test_invalid_sid(self, fake: FakeTwilio, http: httpx.AsyncClient, sid: str) -> None:
        with pytest.raises(TwilioError, match="invalid call SID"):
            await rest(http).fetch(sid)
        assert fake.requests == []


class TestEndingCalls:
    @pytest.mark.parametrize(("status", "code"), [(404, 20404), (400, 21220)])
    async def test_hangup_of_ended_call_is_quiet(
        self, fake: FakeTwilio, http: httpx.AsyncClient, status: int, code: int
    ) -> None:
        fake.replies = [error(status, code)]
        await rest(http).hangup(CALL_SID)
        assert len(fake.requests) == 1

    async def test_hangup_other_error_raises(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        fake.replies = [error(400, 21201, "No 'To' number is specified")]
        with pytest.raises(TwilioError) as info:
            await rest(http).hangup(CALL_SID)
        assert (info.value.status, info.value.code) == (400, 21201)

    async def test_cancel_ringing(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(200, json=call_json("canceled"))]
        await rest(http).cancel(CALL_SID)
        assert fake.form() == [("Status", "canceled")]
        assert len(fake.requests) == 1

    async def test_cancel_answered_falls_back_to_hangup(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        """``canceled`` leaves an answered call up (200, in-progress): it is then hung up."""
        fake.replies = [
            httpx.Response(200, json=call_json("in-progress")),
            httpx.Response(200, json=call_json("completed")),
        ]
        await rest(http).cancel(CALL_SID)
        assert [fake.form(0), fake.form(1)] == [[("Status", "canceled")], [("Status", "completed")]]

    async def test_cancel_not_cancelable_falls_back_to_hangup(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        fake.replies = [error(400, 21220), error(400, 21220)]
        await rest(http).cancel(CALL_SID)
        assert fake.form(1) == [("Status", "completed")]

    async def test_cancel_of_unknown_call_is_quiet(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        fake.replies = [error(404, 20404)]
        await rest(http).cancel(CALL_SID)
        assert len(fake.requests) == 1

    async def test_ending_a_call_that_already_ended_warns_nobody(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        """The other party hung up first: our hang-up's 20404 is the goal reached, logged at
        info; the same code on a fetch is still a warning."""
        fake.replies = [error(404, 20404), error(404, 20404), error(404, 20404)]
        with structlog.testing.capture_logs() as logs:
            await rest(http).hangup(CALL_SID)
            await rest(http).cancel(CALL_SID)
            with pytest.raises(TwilioError):
                await rest(http).fetch(CALL_SID)
        levels = [
            (e["operation"], e["log_level"]) for e in logs if e["event"] == "twilio_rest_error"
        ]
        assert levels == [("hangup", "info"), ("cancel", "info"), ("fetch", "warning")]


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "code"), [(401, 20003), (404, 20404), (400, 21205), (403, 20003)]
    )
    async def test_4xx_is_not_retried(
        self, fake: FakeTwilio, http: httpx.AsyncClient, status: int, code: int
    ) -> None:
        fake.replies = [error(status, code, "nope")]
        with pytest.raises(TwilioError) as info:
            await rest(http).fetch(CALL_SID)
        assert (info.value.status, info.value.code) == (status, code)
        assert "nope" in str(info.value)
        assert len(fake.requests) == 1

    async def test_non_json_error_body(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(401, text="<html>denied</html>")]
        with pytest.raises(TwilioError) as info:
            await rest(http).fetch(CALL_SID)
        assert (info.value.status, info.value.code) == (401, 401)

    async def test_unparseable_success(self, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        fake.replies = [httpx.Response(200, text="not json")]
        with pytest.raises(TwilioError, match="bad response"):
            await rest(http).fetch(CALL_SID)

    async def test_errors_are_logged_without_secrets(
        self, fake: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        fake.replies = [error(401, 20003, "Authenticate")]
        with structlog.testing.capture_logs() as logs, pytest.raises(TwilioError):
            await rest(http).fetch(CALL_SID)
        [entry] = [e for e in logs if e["event"] == "twilio_rest_error"]
        assert (entry["code"], entry["status"], entry["operation"]) == (20003, 401, "fetch")
        assert TOKEN not in repr(logs)
        assert "Authorization" not in repr(logs)

    async def test_rendered_log_lines_hold_no_token(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Through the real renderer: retries and the final error, no token, no auth header."""
        import io

        out = io.StringIO()
        configure_logging(level="debug", fmt="json", stream=out)
        token = "s3cr3t-token-value"
        fake.replies = [error(500, 20500), httpx.ConnectError("boom"), error(401, 20003)]
        with pytest.raises(TwilioError):
            await rest(http, token=token).fetch(CALL_SID)
        text = out.getvalue()
        assert "twilio_rest_retry" in text
        assert "twilio_rest_error" in text
        assert token not in text
        assert base64.b64encode(f"{ACCOUNT_SID}:{token}".encode()).decode() not in text


class TestRetries:
    async def test_500_then_success(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [error(500, 20500), httpx.Response(200, json=call_json("completed"))]
        with trio.fail_after(60):
            await rest(http).hangup(CALL_SID)
        assert len(fake.requests) == 2
        gap = fake.times[1] - fake.times[0]
        assert 0.25 <= gap <= 0.5  # first backoff: 0.5 s with equal jitter

    async def test_backoff_grows(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [error(502, 0), error(502, 0), error(502, 0), error(502, 0)]
        with pytest.raises(TwilioError) as info:
            await rest(http, max_retries=3).fetch(CALL_SID)
        assert info.value.status == 502
        gaps = [b - a for a, b in zip(fake.times, fake.times[1:], strict=False)]
        assert len(gaps) == 3
        for gap, step in zip(gaps, (0.5, 1.0, 2.0), strict=True):
            assert step / 2 <= gap <= step

    async def test_429_honours_retry_after(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [
            error(429, 20429, "Too Many Requests", **{"Retry-After": "3"}),
            httpx.Response(201, json=call_json()),
        ]
        info = await rest(http).create_call(
            to="+1", from_="+2", url="https://b/u", status_callback="https://b/s", timeout_s=20
        )
        assert info.sid == CALL_SID
        assert fake.times[1] - fake.times[0] == pytest.approx(3.0)

    @pytest.mark.parametrize(("header", "wait"), [("1.5", 1.5), ("0", 0.0)])
    async def test_retry_after_forms(
        self,
        fake: FakeTwilio,
        http: httpx.AsyncClient,
        autojump_clock: trio.testing.MockClock,
        header: str,
        wait: float,
    ) -> None:
        fake.replies = [
            error(503, 20503, **{"Retry-After": header}),
            httpx.Response(200, json=call_json()),
        ]
        await rest(http).fetch(CALL_SID)
        assert fake.times[1] - fake.times[0] == pytest.approx(wait)

    async def test_bad_retry_after_uses_backoff(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [
            error(503, 20503, **{"Retry-After": "soon"}),
            httpx.Response(200, json=call_json()),
        ]
        await rest(http).fetch(CALL_SID)
        assert 0.25 <= fake.times[1] - fake.times[0] <= 0.5

    async def test_retry_after_over_budget_gives_up_at_once(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [error(429, 20429, **{"Retry-After": str(int(MAX_TOTAL_BACKOFF_S) + 1)})]
        start = trio.current_time()
        with pytest.raises(TwilioError) as info:
            await rest(http).fetch(CALL_SID)
        assert (info.value.status, info.value.code) == (429, 20429)
        assert trio.current_time() == start
        assert len(fake.requests) == 1

    async def test_total_backoff_is_capped(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Each Retry-After is allowed, but together they would pass the cap: stop before it."""
        fake.replies = [error(429, 20429, **{"Retry-After": "8"}) for _ in range(11)]
        start = trio.current_time()
        with pytest.raises(TwilioError):
            await rest(http, max_retries=10).fetch(CALL_SID)
        assert trio.current_time() - start <= MAX_TOTAL_BACKOFF_S
        assert len(fake.requests) == 3  # waits of 8 + 8; a third 8 would pass 20 s

    async def test_transport_error_retried_then_raises(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [httpx.ConnectError("refused") for _ in range(3)]
        with pytest.raises(TwilioError, match="ConnectError") as info:
            await rest(http, max_retries=2).hangup(CALL_SID)
        assert (info.value.status, info.value.code) == (None, None)
        assert len(fake.requests) == 3

    async def test_decoding_error_is_a_transport_failure(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [httpx.DecodingError("bad gzip") for _ in range(2)]
        with pytest.raises(TwilioError, match="DecodingError"):
            await rest(http, max_retries=1).fetch(CALL_SID)
        assert len(fake.requests) == 2

    async def test_transport_error_then_success(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [httpx.ReadError("reset"), httpx.Response(200, json=call_json("ringing"))]
        info = await rest(http).fetch(CALL_SID)
        assert info.status == "ringing"

    async def test_slow_answer_times_out_and_retries(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        async def never(request: httpx.Request) -> httpx.Response:
            await trio.sleep_forever()
            raise AssertionError  # pragma: no cover

        fake.replies = [never, httpx.Response(200, json=call_json())]
        start = trio.current_time()
        await rest(http, request_timeout_s=2.0).fetch(CALL_SID)
        assert 2.0 + 0.25 <= trio.current_time() - start <= 2.0 + 0.5

    async def test_no_retries_when_disabled(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        fake.replies = [error(503, 0)]
        with pytest.raises(TwilioError):
            await rest(http, max_retries=0).fetch(CALL_SID)
        assert len(fake.requests) == 1


class TestCreateIsNotDuplicated:
    """A create that may have reached Twilio is not repeated: it would ring the operator twice."""

    @pytest.mark.parametrize("reply", [error(500, 20500), error(502, 0), httpx.ReadError("reset")])
    async def test_ambiguous_failures_are_final(
        self,
        fake: FakeTwilio,
        http: httpx.AsyncClient,
        autojump_clock: trio.testing.MockClock,
        reply: Reply,
    ) -> None:
        fake.replies = [reply]
        with pytest.raises(TwilioError):
            await rest(http).create_call(
                to="+1", from_="+2", url="https://b/u", status_callback="https://b/s", timeout_s=20
            )
        assert len(fake.requests) == 1

    @pytest.mark.parametrize(
        "reply", [error(503, 20503), error(429, 20429), httpx.ConnectError("refused")]
    )
    async def test_unprocessed_failures_are_retried(
        self,
        fake: FakeTwilio,
        http: httpx.AsyncClient,
        autojump_clock: trio.testing.MockClock,
        reply: Reply,
    ) -> None:
        fake.replies = [reply, httpx.Response(201, json=call_json())]
        info = await rest(http).create_call(
            to="+1", from_="+2", url="https://b/u", status_callback="https://b/s", timeout_s=20
        )
        assert info.sid == CALL_SID
        assert len(fake.requests) == 2

    async def test_create_timeout_is_final(
        self, fake: FakeTwilio, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
    ) -> None:
        async def never(request: httpx.Request) -> httpx.Response:
            await trio.sleep_forever()
            raise AssertionError  # pragma: no cover

        fake.replies = [never]
        with pytest.raises(TwilioError, match="no answer"):
            await rest(http, request_timeout_s=1.0).create_call(
                to="+1", from_="+2", url="https://b/u", status_callback="https://b/s", timeout_s=20
            )
        assert len(fake.requests) == 1


def test_error_body_shape_is_twilios() -> None:
    """Guard for the fixtures above: the legacy error JSON Twilio's 2010 API returns."""
    body = json.loads(error(404, 20404).content)
    assert set(body) == {"code", "message", "more_info", "status"}
