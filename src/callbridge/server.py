"""``callbridge serve``: the root nursery that owns the web server and every call.

Resource handling: the root nursery owns hypercorn and the call supervisor. SIGINT/SIGTERM stop
admitting calls, give live calls ``server.shutdown_grace_s`` to finish, then end what is left
(those calls end with reason ``shutdown``, hanging up at Twilio alongside their Palabra goodbyes,
both bounded by ``calls.supervisor.SHUTDOWN_END_S``) and stop the web server: the process exits
within ``server.shutdown_grace_s + EXIT_WITHIN_S``. A second signal skips the grace. SIGHUP is
ignored (logged) from start-up to exit, the drain included: one signal receiver covers it all, so
its default action (terminate) never comes back while calls are live.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from functools import partial

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from callbridge.app import create_asgi
from callbridge.calls.supervisor import CallSupervisor
from callbridge.config import Config
from callbridge.config.checks import parse_listen
from callbridge.config_summary import metrics_url, twilio_webhook_url
from callbridge.keep_alive import IdleKeepAlive
from callbridge.lifecycle import ServiceLifecycle
from callbridge.log import get_logger
from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.routes import serve_metrics
from callbridge.service.memtrace import serve_memory_dumps
from callbridge.service.systemd import SystemdNotifier
from callbridge.services import open_services

__all__ = ["bind_socket", "hypercorn_config", "resolve_public_url", "serve"]

log = get_logger("callbridge.server")

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so port 0 resolves before any URL is built."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def resolve_public_url(config: Config, sock: socket.socket) -> Config:
    """What binding decided: ``server.port = 0`` becomes the port bound (so the default
    ``Config.instance_id``, ``hostname:port``, names this process, not ``hostname:0``), and with
    no ``server.public_url`` Twilio is told the address we actually bound."""
    host, port = sock.getsockname()[:2]
    server = config.server
    if server.port == 0:
        server = attrs.evolve(server, port=port)
    if not server.public_url:
        url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        server = attrs.evolve(server, public_url=url)
    return attrs.evolve(config, server=server)


def hypercorn_config(sock: socket.socket) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.fileno()}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 1.0
    # Twilio media messages are ~300 bytes. Our own limit (MAX_MESSAGE_CHARS, 64 KiB) ends the
    # call at once with its reason; this one stops anything far larger before it is buffered.
    hc.websocket_max_message_size = 256 * 1024
    return hc


async def serve(
    config: Config, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or cancellation), then drain and return."""
    if not config.twilio.validate_signatures:
        log.warning("signature_validation_disabled", hint="only for local experiments")
    sock = bind_socket(config.server.host, config.server.port)
    metrics_sock = (
        bind_socket(*parse_listen(config.metrics.listen)) if config.metrics.listen else None
    )
    config = resolve_public_url(config, sock)
    notifier = SystemdNotifier.from_environ(os.environ)
    # One receiver from start to exit: SIGHUP's default action (terminate) never comes back.
    with trio.open_signal_receiver(*_SIGNALS) as signals:
        await _serve(config, sock, metrics_sock, notifier, signals, task_status)
    notifier.close()
    log.info("stopped")


async def _serve(
    config: Config,
    sock: socket.socket,
    metrics_sock: socket.socket | None,
    notifier: SystemdNotifier,
    signals: AsyncIterator[int],
    task_status: trio.TaskStatus[list[str]],
) -> None:
    stop_web = trio.Event()
    async with open_services(config) as services, trio.open_nursery() as root:
        app = IdleKeepAlive(create_asgi(services))  # idle HTTP connections do get closed
        root.start_soon(serve_memory_dumps, os.environ, stop_web)  # CALLBRIDGE_TRACEMALLOC
        binds: list[str] = await root.start(
            partial(hypercorn_serve, app, hypercorn_config(sock), shutdown_trigger=stop_web.wait)
        )
        metrics_at = metrics_url(config)
        if metrics_sock is not None:
            metrics_binds: list[str] = await root.start(
                serve_metrics, services.metrics, metrics_sock, stop_web
            )
            metrics_at = f"{metrics_binds[0]}/metrics"
        lifecycle = ServiceLifecycle(
            notifier,
            LiveDaemon(services.supervisor, services.transcripts),
            services.metrics,
            config.server.max_calls,
        )
        async with lifecycle.monitoring():
            log.info(
                "listening",
                binds=binds,
                public_url=config.public_url,
                twilio_webhook=twilio_webhook_url(config),
                metrics=metrics_at,
                max_calls=config.server.max_calls,
            )
            lifecycle.ready()
            task_status.started(binds)
            await _wait_for_signal(signals)
            await _drain(lifecycle, services.supervisor, config.server.shutdown_grace_s, signals)
        services.transcripts.close_feeds()
        stop_web.set()


async def _drain(
    lifecycle: ServiceLifecycle,
    supervisor: CallSupervisor,
    grace_s: float,
    signals: AsyncIterator[int],
) -> None:
    """Stop admitting, let live calls finish within ``grace_s`` (a second signal ends them now),
    and keep systemd informed: STOPPING=1, then more stop time while the drain runs."""
    lifecycle.stopping()
    log.info("shutting_down", active_calls=supervisor.active_count)
    async with trio.open_nursery() as drain:
        drain.start_soon(lifecycle.extend_while_draining)
        drain.start_soon(_cancel_on_second_signal, signals, supervisor.cancel_all)
        await supervisor.drain(grace_s)
        drain.cancel_scope.cancel()


async def _wait_for_signal(signals: AsyncIterator[int]) -> None:
    """Until SIGINT or SIGTERM; SIGHUP is logged and ignored."""
    async for signum in signals:
        if _ignored(signum):
            continue
        log.info("signal", signal=signal.Signals(signum).name)
        return


async def _cancel_on_second_signal(
    signals: AsyncIterator[int], cancel_all: Callable[[], object]
) -> None:
    async for signum in signals:
        if _ignored(signum):
            continue
        log.warning("signal_again", signal=signal.Signals(signum).name, action="ending calls now")
        cancel_all()
        return
    await trio.sleep_forever()


def _ignored(signum: int) -> bool:
    if signum != signal.SIGHUP:
        return False
    # No live reload: restart to change settings. SIGHUP must not kill live calls.
    log.warning("signal_ignored", signal="SIGHUP", hint="restart to apply new settings")
    return True
