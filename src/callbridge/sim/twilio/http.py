"""The fake Twilio's HTTP face: the Calls REST API and the ``/_sim`` control endpoints."""

from __future__ import annotations

import functools
import secrets
import time
from pathlib import Path
from typing import Any

import attrs
import trio
from quart import Response, g, request
from quart_trio import QuartTrio

from callbridge.log import get_logger
from callbridge.sim.twilio.calls import LIVE_STATUSES, Call
from callbridge.sim.twilio.scenario import (
    CallerSpec,
    DtmfSpec,
    ScenarioError,
    dtmf_problems,
    scenario_from_dict,
)
from callbridge.sim.twilio.sim import TwilioSim

__all__ = ["create_sim_app", "twilio_error"]

log = get_logger("callbridge.sim.twilio.http")

ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21201: "No 'To' number is specified",
    21205: "Url is not a valid URL",
    21200: "Missing required parameter Url, Twiml or ApplicationSid",
    21220: "Call is not in-progress. Cannot redirect.",
}


def twilio_error(code: int, status: int, path: str = "", message: str | None = None) -> Response:
    body = {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error").format(path=path),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(_dumps(body), status=status, content_type="application/json")


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, default=str)


async def _set_later(event: Any) -> None:
    await trio.sleep(0.1)
    event.set()


async def _slow_answer(sim: TwilioSim, endpoint: str) -> None:
    """An injected ``rest_delays`` entry: the request already took effect; answer later."""
    delay = sim.take_rest_delay(endpoint)
    if delay > 0:
        g.rest_entry["delayed_s"] = delay
        await trio.sleep(delay)


def _json(data: Any, status: int = 200) -> Response:
    return Response(_dumps(data), status=status, content_type="application/json")


def create_sim_app(sim: TwilioSim) -> QuartTrio:
    app = QuartTrio("callbridge.sim.twilio")
    base = "/2010-04-01/Accounts/<account>"

    @app.before_request
    async def read_body() -> None:
        # A handler that leaves a request's body unread (``/_sim/stats`` with ``{}``) left the
        # keep-alive connection stuck about one time in seven (hypercorn's HTTP/1.1 waits for
        # the body): the client's next request on it was never answered.
        await request.get_data()

    async def guard(account: str, endpoint: str) -> tuple[Response | None, Response | None]:
        """Log the request, check Basic auth, apply injected 429/5xx: (the answer now, or None to
        go ahead; and an injected error to answer with after acting, or None)."""
        form = await request.form
        auth = request.authorization
        ok = (
            auth is not None
            and secrets.compare_digest(str(auth.username or ""), sim.options.account_sid)
            and secrets.compare_digest(str(auth.password or ""), sim.options.auth_token)
            and account == sim.options.account_sid
        )
        entry = {
            "at": time.time(),
            "method": request.method,
            "path": request.path,
            "endpoint": endpoint,
            "form": {k: form.getlist(k) for k in form},
            "auth_ok": ok,
        }
        sim.rest_log.append(entry)
        # This request's entry: requests overlap (the app ends both legs at once), so the last
        # entry in the log may be another's.
        g.rest_entry = entry
        if not ok:
            entry["status"] = 401
            return twilio_error(20003, 401), None
        injected = sim.take_rest_error(endpoint)
        if injected is None:
            return None, None
        entry["injected"] = True
        error = twilio_error(20429 if injected.status == 429 else 20500, injected.status)
        if injected.after_acting:
            entry["after_acting"] = True
            return None, error
        entry["status"] = injected.status
        return error, None

    def finish(response: Response) -> Response:
        g.rest_entry["status"] = response.status_code
        return response

    @app.post(base + "/Calls.json")
    async def create_call(account: str) -> Response:
        denied, late_error = await guard(account, "create")
        if denied is not None:
            return denied
        form = await request.form
        if not form.get("To"):
            return finish(twilio_error(21201, 400))
        if not form.get("From"):
            return finish(twilio_error(21200, 400, message="No 'From' number is specified"))
        if not form.get("Url") and not form.get("Twiml"):
            return finish(twilio_error(21200, 400))
        if len(form.get("Twiml", "")) > 4000:
            return finish(twilio_error(32018, 400, message="Twiml over 4000 characters"))
        fields: dict[str, Any] = {k: form.get(k) for k in form}
        fields["StatusCallbackEvent"] = form.getlist("StatusCallbackEvent")
        call = sim.create_outbound_call(fields)
        body = call.to_json() | {"status": "queued"}
        await _slow_answer(sim, "create")  # the call is placed (it rings) meanwhile
        if late_error is not None:
            return finish(late_error)
        return finish(_json(body, 201))

    @app.route(base + "/Calls/<sid>.json", methods=["GET", "POST"])
    async def call_resource(account: str, sid: str) -> Response:
        endpoint = "fetch" if request.method == "GET" else "update"
        denied, late_error = await guard(account, endpoint)
        if denied is not None:
            return denied
        call = sim.calls.get(sid)
        if call is None:
            return finish(twilio_error(20404, 404, request.path))
        if request.method == "GET":
            answer = late_error or _json(call.to_json())
            await _slow_answer(sim, "fetch")
            return finish(answer)
        answer = await _update(call, await request.form)
        await _slow_answer(sim, "update")  # the update took effect; its answer is late
        return finish(late_error or answer)

    async def _update(call: Call, form: Any) -> Response:
        status = form.get("Status")
        live = call.status in LIVE_STATUSES and not call.ending
        if status in ("completed", "canceled"):
            if not live:
                code = sim.scenario.ended_call_update_code
                return twilio_error(code, 404 if code == 20404 else 400, request.path)
            if status == "canceled" and call.status == "in-progress":
                return _json(call.to_json())  # Twilio ignores cancel on an answered call
            final = status if call.status != "in-progress" else "completed"
            if call.stream is not None:
                # Twilio answers at once; the stream's stop and close handshake follow. Waiting
                # for them here would stall an app that closes its sockets after this request.
                sim.nursery.start_soon(functools.partial(call.end, final, reason=f"rest_{status}"))
                return _json(call.to_json() | {"status": final})
            await call.end(final, reason=f"rest_{status}")
            return _json(call.to_json())
        twiml, url = form.get("Twiml"), form.get("Url")
        if twiml is None and url is None:
            return _json(call.to_json())  # e.g. only StatusCallback changes
        if call.status != "in-progress" or call.ending:
            return twilio_error(21220, 400)
        await call.redirect(twiml=twiml, url=url, method=str(form.get("Method") or "POST").upper())
        return _json(call.to_json())

    # -- control ------------------------------------------------------------------------------
    @app.get("/_sim/report")
    async def report() -> Response:
        return _json(sim.report())

    @app.post("/_sim/stats")
    async def stats() -> Response:
        return _json(sim.window_stats())

    @app.post("/_sim/call")
    async def start_call() -> Response:
        data = await request.get_json(silent=True) or {}
        overrides = {("from_" if k == "from" else k): v for k, v in data.items()}
        try:
            spec = attrs.evolve(sim.scenario.caller, **overrides)
        except TypeError as exc:
            return _json({"error": str(exc)}, 400)
        call = sim.start_inbound_call(spec if isinstance(spec, CallerSpec) else None)
        return _json({"call_sid": call.sid})

    @app.post("/_sim/hangup")
    async def hangup() -> Response:
        data = await request.get_json(silent=True) or {}
        sids = await sim.hangup(party=data.get("party"), call_sid=data.get("call_sid"))
        return _json({"hung_up": sids})

    @app.post("/_sim/dtmf")
    async def dtmf() -> Response:
        data = await request.get_json(silent=True) or {}
        party, digits = data.get("party", "caller"), data.get("digits")
        spec = DtmfSpec(str(digits or ""), party=str(party), gap_s=float(data.get("gap_s", 0.3)))
        problems = dtmf_problems((spec,))
        if problems:
            return _json({"error": problems}, 400)
        return _json({"streams": sim.press_keys(spec.party, spec.digits, spec.gap_s)})

    @app.post("/_sim/write-wavs")
    async def write_wavs() -> Response:
        data = await request.get_json(silent=True) or {}
        if not data.get("dir"):
            return _json({"error": "dir is required"}, 400)
        return _json({"files": sim.write_wavs(Path(data["dir"]))})

    @app.post("/_sim/faults")
    async def faults() -> Response:
        data = await request.get_json(silent=True) or {}
        keys = ("faults", "rest_errors", "rest_delays", "callbacks", "default_operator")
        try:
            parsed = scenario_from_dict({k: data[k] for k in keys if k in data})
        except ScenarioError as exc:
            return _json({"error": exc.problems}, 400)
        injected = sim.add_faults(list(parsed.faults))
        sim.add_rest_errors(list(parsed.rest_errors))
        sim.add_rest_delays(list(parsed.rest_delays))
        if "callbacks" in data:
            sim.set_callbacks(parsed.callbacks)
        if "default_operator" in data:
            sim.set_default_operator(parsed.default_operator)
        counts = {"faults": len(sim.faults), "rest_errors": len(sim.rest_errors)}
        return _json(counts | {"rest_delays": len(sim.rest_delays), "injected": injected})

    @app.post("/_sim/wait-idle")
    async def wait_idle() -> Response:
        data = await request.get_json(silent=True) or {}
        idle = await sim.wait_idle(float(data.get("timeout_s", 60)))
        return _json({"idle": idle})

    @app.post("/_sim/shutdown")
    async def shutdown() -> Response:
        # Set the event only after this response went out; shutdown stops the web server.
        sim.nursery.start_soon(_set_later, sim.shutdown_requested)
        return _json({"shutting_down": True})

    return app
