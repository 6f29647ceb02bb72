"""Run the fake Twilio: bind 127.0.0.1, serve REST + control, drive the scenario.

Resource handling: :func:`serve_twilio_sim` owns one nursery holding hypercorn, every call and
the shared ``httpx.AsyncClient``. It returns after ``POST /_sim/shutdown``
(:attr:`TwilioSim.shutdown_requested`) or when cancelled; live calls are then hung up (stop,
close, final callbacks), and WAVs are written when ``out_dir`` is set.
"""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from callbridge.log import get_logger
from callbridge.sim.twilio.conversation import Conversation, load_turns
from callbridge.sim.twilio.http import create_sim_app
from callbridge.sim.twilio.sim import SimOptions, TwilioSim
from callbridge.sim.twilio.webhooks import Signer, WebhookClient

__all__ = ["serve_twilio_sim"]

log = get_logger("callbridge.sim.twilio")

DRAIN_S = 5.0  # at shutdown: how long final callbacks may take


async def serve_twilio_sim(
    options: SimOptions, *, task_status: trio.TaskStatus[TwilioSim] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until shutdown is requested; ``task_status.started`` gets the live :class:`TwilioSim`."""
    sock = _bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    scenario = options.scenario
    signer = Signer(options.auth_token, list(scenario.faults))
    stop_web = trio.Event()
    # One connection per webhook, closed after its answer: an idle keep-alive connection would
    # hold a socket and a task in the app until the app closes it (hypercorn 0.18 on trio never
    # does), and a test counting the app's resources would see the pool's size.
    no_pool = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=no_pool) as http, trio.open_nursery() as nursery:
        sim = TwilioSim(
            options=options,
            nursery=nursery,
            http=http,
            signer=signer,
            webhooks=WebhookClient(http, signer, scenario.timing.webhook_timeout_s),
            url=f"http://{host}:{port}",
        )
        sim.add_rest_errors(list(scenario.rest_errors))
        nursery.start_soon(sim.engine.run)
        sim.add_rest_delays(list(scenario.rest_delays))
        if scenario.script is not None:
            turns = load_turns(Path(scenario.script.path))
            sim.enable_script(Conversation(scenario.script, turns, {}))
            assert sim.conversation is not None
            nursery.start_soon(sim.conversation.run)
        app = create_sim_app(sim)
        await nursery.start(
            partial(hypercorn_serve, app, _hypercorn_config(sock), shutdown_trigger=stop_web.wait)
        )
        if scenario.caller.start_after_s is not None:
            nursery.start_soon(_auto_call, sim, scenario.caller.start_after_s)
        log.info("sim_listening", url=sim.url, app_url=options.app_url)
        task_status.started(sim)
        try:
            await sim.shutdown_requested.wait()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(DRAIN_S):
                await sim.end_all()
                await sim.drained()
                await sim.webhooks.wait_idle()
            if options.out_dir is not None:
                files = sim.write_wavs(options.out_dir)
                log.info("wavs_written", files=files)
            stop_web.set()
            nursery.cancel_scope.cancel()


async def _auto_call(sim: TwilioSim, delay: float) -> None:
    await trio.sleep(delay)
    sim.start_inbound_call()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _hypercorn_config(sock: socket.socket) -> HypercornConfig:
    hc = HypercornConfig()
    # hypercorn wraps the fd in its own socket object and closes it; detach ours so the fd has
    # exactly one owner.
    hc.bind = [f"fd://{sock.detach()}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.graceful_timeout = 1.0
    return hc
