"""``callbridge serve``: the root nursery that owns the web server and every call.

Resource handling: the root nursery owns hypercorn and the call supervisor. SIGINT/SIGTERM stop
admitting calls, give live calls ``server.shutdown_grace_s`` to finish, then cancel what is left
(those calls end with reason ``shutdown``) and stop the web server. A second signal skips the grace.
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

from callbridge.app import create_app
from callbridge.calls.supervisor import CallSupervisor
from callbridge.config import Config
from callbridge.config.checks import parse_listen
from callbridge.config_summary import metrics_url, twilio_webhook_url
from callbridge.log import get_logger
from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.routes import serve_metrics
from callbridge.service.lifecycle import ServiceLifecycle
from callbridge.service.memtrace import serve_memory_dumps
from callbridge.service.systemd import SystemdNotifier
from callbridge.services import open_services

__all__ = ["bind_socket", "hypercorn_config", "resolve_public_url", "serve"]

log = get_logger("callbridge.server")


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
    """With no ``server.public_url``, Twilio is told the address we actually bound."""
    if config.server.public_url:
        return config
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    return attrs.evolve(config, server=attrs.evolve(config.server, public_url=url))


def hypercorn_config(sock: socket.socket) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.fileno()}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 1.0
    # Twilio media messages are ~300 bytes; nothing we accept needs more than this.
    hc.websocket_max_message_size = 1 << 20
    return hc


async def serve(
    config: Config, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or cancellation), then drain and return."""
    if not config.twilio.validate_signatures:
        log.warning("signature_validation_disabled", hint="only for local experiments")
    stop_web = trio.Event()
    sock = bind_socket(config.server.host, config.server.port)
    metrics_sock = (
        bind_socket(*parse_listen(config.metrics.listen)) if config.metrics.listen else None
    )
    config = resolve_public_url(config, sock)
    notifier = SystemdNotifier.from_environ(os.environ)
    async with open_services(config) as services, trio.open_nursery() as root:
        app = create_app(services)
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
            await _wait_for_signal()
            await _drain(lifecycle, services.supervisor, config.server.shutdown_grace_s)
        services.transcripts.close_feeds()
        stop_web.set()
    notifier.close()
    log.info("stopped")


async def _drain(lifecycle: ServiceLifecycle, supervisor: CallSupervisor, grace_s: float) -> None:
    """Stop admitting, let live calls finish within ``grace_s`` (a second signal ends them now),
    and keep systemd informed: STOPPING=1, then more stop time while the drain runs."""
    lifecycle.stopping()
    log.info("shutting_down", active_calls=supervisor.active_count)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as again:
        async with trio.open_nursery() as drain:
            drain.start_soon(lifecycle.extend_while_draining)
            drain.start_soon(_cancel_on_second_signal, again, supervisor.cancel_all)
            await supervisor.drain(grace_s)
            drain.cancel_scope.cancel()


async def _wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                # No live reload: restart to change settings. SIGHUP must not kill live calls.
                log.warning("signal_ignored", signal="SIGHUP", hint="restart to apply new settings")
                continue
            log.info("signal", signal=signal.Signals(signum).name)
            return


async def _cancel_on_second_signal(
    signals: AsyncIterator[int], cancel_all: Callable[[], None]
) -> None:
    async for signum in signals:
        log.warning("signal_again", signal=signal.Signals(signum).name, action="ending calls now")
        cancel_all()
        return
