"""REST Calls API: shapes, auth, errors, injected failures; operator outcomes and callbacks."""

from __future__ import annotations

import httpx
import pytest
import trio
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from callbridge.sim.twilio import Scenario
from callbridge.sim.twilio.scenario import (
    CallbackOptions,
    OperatorSpec,
    RestDelay,
    RestError,
    ScenarioError,
    Timing,
    scenario_from_dict,
)
from callbridge.sim.twilio.sim import TwilioSim
from tests.sim_twilio.harness import SID, TOKEN, running

FAST = Timing(ring_delay_s=0.05, busy_delay_s=0.1, fail_delay_s=0.05)
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def _calls_url(sim: TwilioSim) -> str:
    return f"{sim.url}/2010-04-01/Accounts/{SID}/Calls"


async def test_create_fetch_update_with_the_official_client() -> None:
    scenario = Scenario(default_operator=OperatorSpec(answer_delay_s=0.1), timing=FAST)
    with trio.fail_after(8):
        async with running(scenario) as (sim, app):
            client = Client(SID, TOKEN)
            client.api.base_url = sim.url
            call = await trio.to_thread.run_sync(
                lambda: client.calls.create(
                    to="+15550200001",
                    from_="+15550100000",
                    twiml="<Response><Pause length='30'/></Response>",
                    status_callback=app.url + "/twilio/status/c1/operator",
                    status_callback_event=ALL_EVENTS,
                    timeout=20,
                )
            )
            assert call.status == "queued" and call.direction == "outbound-api"
            assert call.sid.startswith("CA") and call.api_version == "2010-04-01" and call._from
            while sim.calls[call.sid].status != "in-progress":
                await trio.sleep(0.02)
            fetched = await trio.to_thread.run_sync(lambda: client.calls(call.sid).fetch())
            assert fetched.status == "in-progress"
            ended = await trio.to_thread.run_sync(
                lambda: client.calls(call.sid).update(status="completed")
            )
            assert ended.status == "completed"
            with pytest.raises(TwilioRestException) as info:
                await trio.to_thread.run_sync(
                    lambda: client.calls("CA" + "0" * 32).update(status="completed")
                )
            assert info.value.status == 404 and info.value.code == 20404
            assert await sim.wait_idle(5)
    callbacks = app.of_kind("/twilio/status/c1/operator")
    assert all(r["valid"] for r in callbacks)
    got = [(r["params"]["SequenceNumber"], r["params"]["CallStatus"]) for r in callbacks]
    assert got == [("0", "initiated"), ("1", "ringing"), ("2", "in-progress"), ("3", "completed")]
    last = callbacks[-1]["params"]
    assert last["CallDuration"].isdigit() and last["Direction"] == "outbound-api"
    assert last["CallbackSource"] == "call-progress-events" and last["Timestamp"].endswith("+0000")
    rest = sim.report()["rest"]
    assert rest[0]["form"]["StatusCallbackEvent"] == ALL_EVENTS and rest[0]["status"] == 201


async def test_auth_not_found_invalid_state_and_injected_errors() -> None:
    scenario = Scenario(
        default_operator=OperatorSpec(outcome="busy"),
        timing=FAST,
        rest_errors=(RestError("create", 429, 2), RestError("fetch", 503, 1)),
    )
    form = {"To": "+15550200001", "From": "+15550100000", "Twiml": "<Response/>"}
    with trio.fail_after(8):
        async with running(scenario) as (sim, _), httpx.AsyncClient() as http:
            bad = await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, "wrong"))
            assert bad.status_code == 401 and bad.json()["code"] == 20003
            assert bad.json()["more_info"] == "https://www.twilio.com/docs/errors/20003"
            statuses = []
            for _ in range(3):
                r = await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, TOKEN))
                statuses.append((r.status_code, r.json().get("code")))
            assert statuses == [(429, 20429), (429, 20429), (201, None)]
            sid = r.json()["sid"]
            assert r.json()["uri"] == f"/2010-04-01/Accounts/{SID}/Calls/{sid}.json"
            missing = await http.post(
                _calls_url(sim) + ".json", data={"From": "+1"}, auth=(SID, TOKEN)
            )
            assert missing.status_code == 400 and missing.json()["code"] == 21201
            unknown = await http.get(_calls_url(sim) + f"/CA{'f' * 32}.json", auth=(SID, TOKEN))
            assert unknown.status_code == 503  # the injected fetch failure comes first
            unknown = await http.get(_calls_url(sim) + f"/CA{'f' * 32}.json", auth=(SID, TOKEN))
            assert unknown.status_code == 404 and unknown.json()["code"] == 20404
            assert await sim.wait_idle(3)
            redirect = await http.post(
                _calls_url(sim) + f"/{sid}.json", data={"Twiml": "<Response/>"}, auth=(SID, TOKEN)
            )
            assert redirect.status_code == 400 and redirect.json()["code"] == 21220
            hang = await http.post(
                _calls_url(sim) + f"/{sid}.json", data={"Status": "completed"}, auth=(SID, TOKEN)
            )
            assert hang.status_code == 404 and hang.json()["code"] == 20404


async def test_busy_no_answer_failed_callbacks() -> None:
    scenario = Scenario(
        operators={
            "+1001": OperatorSpec(outcome="busy"),
            "+1002": OperatorSpec(outcome="no-answer"),
            "+1003": OperatorSpec(outcome="failed"),
        },
        timing=FAST,
    )
    with trio.fail_after(8):
        async with running(scenario) as (sim, app), httpx.AsyncClient() as http:
            for n in ("1001", "1002", "1003"):
                form = {
                    "To": "+" + n,
                    "From": "+15550100000",
                    "Url": app.url + "/twiml/operator/c1",
                    "StatusCallback": f"{app.url}/twilio/status/{n}/operator",
                    "StatusCallbackEvent": ALL_EVENTS,
                    "Timeout": "1",
                }
                r = await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, TOKEN))
                assert r.status_code == 201
            assert await sim.wait_idle(5)

    def statuses(n: str) -> list[str]:
        return [r["params"]["CallStatus"] for r in app.of_kind(f"/twilio/status/{n}/")]

    assert statuses("1001") == ["initiated", "ringing", "busy"]
    assert statuses("1002") == ["initiated", "ringing", "no-answer"]
    assert statuses("1003") == ["initiated", "failed"]
    assert app.of_kind("/twilio/status/1001/")[-1]["params"]["SipResponseCode"] == "486"
    assert not app.of_kind("/twiml/operator"), "TwiML is never fetched for unanswered calls"


async def test_callbacks_reordered_and_duplicated() -> None:
    scenario = Scenario(
        default_operator=OperatorSpec(outcome="busy"),
        timing=FAST,
        callbacks=CallbackOptions(duplicate=True, reorder=True, hold_s=0.5),
    )
    with trio.fail_after(8):
        async with running(scenario) as (sim, app), httpx.AsyncClient() as http:
            form = {
                "To": "+1", "From": "+2", "Twiml": "<Response/>",
                "StatusCallback": app.url + "/twilio/status/c1/operator",
                "StatusCallbackEvent": ["initiated", "ringing", "completed"],
            }  # fmt: skip
            await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, TOKEN))
            assert await sim.wait_idle(5)
    got = [(r["params"]["SequenceNumber"], r["token"]) for r in app.of_kind("/twilio/status/")]
    assert [seq for seq, _ in got] == ["1", "1", "0", "0", "2", "2"]
    assert got[0][1] == got[1][1] and got[0][1] != got[2][1], (
        "duplicates share the idempotency token"
    )


async def test_a_slow_create_places_the_call_before_it_answers() -> None:
    """``rest_delays``: the create takes effect at once (the phone rings, its callbacks go out)
    and its 201 comes ``delay_s`` later, as the daemon must be ready for."""
    scenario = Scenario(
        default_operator=OperatorSpec(answer_delay_s=30.0),
        timing=FAST,
        rest_delays=(RestDelay("create", 1.0),),
    )
    form = {
        "To": "+15550200001",
        "From": "+15550100000",
        "Url": "https://example.invalid/answer",
        "StatusCallbackEvent": ALL_EVENTS,
        "Timeout": "20",
    }
    with trio.fail_after(8):
        async with running(scenario) as (sim, app), httpx.AsyncClient() as http:
            form["StatusCallback"] = app.url + "/twilio/status/c1/operator"
            start = trio.current_time()
            slow = await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, TOKEN))
            assert slow.status_code == 201 and trio.current_time() - start >= 1.0
            sid = slow.json()["sid"]
            # Before the answer came, the call was ringing and said so.
            ringing = [
                r for r in app.of_kind("/twilio/status/c1/operator")
                if r["params"]["CallStatus"] == "ringing"
            ]  # fmt: skip
            assert ringing and ringing[0]["params"]["CallSid"] == sid
            assert sim.calls[sid].status == "ringing"
            assert sim.report()["rest"][0]["delayed_s"] == 1.0
            fast = await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, TOKEN))
            assert fast.status_code == 201  # times=1: the next one is prompt
            assert "delayed_s" not in sim.report()["rest"][1]
            await sim.end_all()


def test_rest_delays_are_validated() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict({"rest_delays": [{"endpoint": "delete", "delay_s": -1}]})
    assert len(info.value.problems) == 2


async def test_callbacks_and_operators_switched_at_runtime_apply_to_calls_created_after() -> None:
    form = {
        "To": "+1", "From": "+2", "Twiml": "<Response/>",
        "StatusCallback": "",
        "StatusCallbackEvent": ["initiated", "ringing", "completed"],
    }  # fmt: skip
    scenario = Scenario(default_operator=OperatorSpec(outcome="busy"), timing=FAST)
    with trio.fail_after(8):
        async with running(scenario) as (sim, app), httpx.AsyncClient() as http:
            url = _calls_url(sim) + ".json"
            before = form | {"StatusCallback": app.url + "/twilio/status/before/operator"}
            await http.post(url, data=before, auth=(SID, TOKEN))
            switched = {"callbacks": {"duplicate": True}, "default_operator": {"outcome": "failed"}}
            assert (await http.post(sim.url + "/_sim/faults", json=switched)).status_code == 200
            after = form | {"StatusCallback": app.url + "/twilio/status/after/operator"}
            await http.post(url, data=after, auth=(SID, TOKEN))
            assert await sim.wait_idle(5)
            bad = await http.post(sim.url + "/_sim/faults", json={"callbacks": {"twice": 1}})
    assert bad.status_code == 400
    seqs = {
        which: [r["params"]["SequenceNumber"] for r in app.of_kind(f"/twilio/status/{which}/")]
        for which in ("before", "after")
    }
    assert seqs == {"before": ["0", "1", "2"], "after": ["0", "0", "1", "1"]}
    last = {w: app.of_kind(f"/twilio/status/{w}/")[-1]["params"]["CallStatus"] for w in seqs}
    assert last == {"before": "busy", "after": "failed"}


async def test_overlapping_requests_each_get_their_own_status_in_the_report() -> None:
    """The app ends both legs at once: a slow answer and a quick one overlap, and each REST log
    entry must carry its own request's status (the quick one used to land on the other's)."""
    scenario = Scenario(timing=FAST, rest_delays=(RestDelay("fetch", 0.5),))
    form = {"To": "+1", "From": "+2", "Twiml": "<Response><Pause length='30'/></Response>"}
    with trio.fail_after(8):
        async with running(scenario) as (sim, _), httpx.AsyncClient() as http:
            created = await http.post(_calls_url(sim) + ".json", data=form, auth=(SID, TOKEN))
            url = f"{_calls_url(sim)}/{created.json()['sid']}.json"
            missing = f"{_calls_url(sim)}/CA{'0' * 32}.json"
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: http.get(url, auth=(SID, TOKEN)))  # slow: 0.5 s
                await trio.sleep(0.1)
                nursery.start_soon(lambda: http.get(missing, auth=(SID, TOKEN)))  # quick: 404
    slow, quick = sim.report()["rest"][1:]
    assert (slow["path"].endswith(url.rsplit("/", 1)[1]), slow["status"]) == (True, 200)
    assert slow["delayed_s"] == 0.5
    assert quick["status"] == 404 and "delayed_s" not in quick
