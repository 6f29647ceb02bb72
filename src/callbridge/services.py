"""The long-lived objects one daemon shares between its web routes and its calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import trio

from callbridge.audio import load_hold_audio
from callbridge.calls.ports import CallControl, LinkOpener, TranslatorLink
from callbridge.calls.recovery import end_orphaned_calls
from callbridge.calls.session import CallDeps
from callbridge.calls.supervisor import CallSupervisor
from callbridge.cluster import Cluster, InstanceInfo, InstanceStatus, open_cluster
from callbridge.config import Config
from callbridge.log import get_logger
from callbridge.metrics import Metrics
from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.sink import MeteredTranscriptSink
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction
from callbridge.telephony.rest import TwilioRest
from callbridge.telephony.signature import SignatureChecker
from callbridge.transcripts import TranscriptHub, open_transcript_hub
from callbridge.transcripts.store import StoreUnavailable

__all__ = ["Services", "open_services"]

log = get_logger("callbridge.services")


@attrs.define
class Services:
    config: Config
    http: httpx.AsyncClient
    supervisor: CallSupervisor
    transcripts: TranscriptHub
    signatures: SignatureChecker
    # Rejected or malformed input by kind (bad_signature, unknown_call, ...), for logs and metrics.
    counters: Counter[str] = attrs.Factory(Counter)
    metrics: Metrics = attrs.Factory(Metrics)
    # Cluster mode (docs/cluster.md); without cluster.redis_url its parts are local stand-ins.
    cluster: Cluster | None = None


def _palabra_opener(config: Config, http: httpx.AsyncClient) -> LinkOpener:
    from callbridge.palabra import open_palabra_link

    def open_link(
        direction: Direction, settings: TaskSettings
    ) -> AbstractAsyncContextManager[TranslatorLink]:
        return open_palabra_link(config, direction, http, settings=settings)

    return open_link


@asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    """Resource handling: on exit, every call ends first (hanging up through the still-open HTTP
    client), then the transcript hub flushes to disk, then the HTTP client closes.

    Restart recovery (``calls.recovery``): the calls the store still holds as live for this
    instance (a previous process died with them) are read before any call is admitted, and ended
    at Twilio in the background; in cluster mode, so are a dead instance's calls, by the survivor
    that claims it (``Cluster.run``'s ``on_dead``).

    Error handling: a hold file that cannot be used raises ``ConfigError`` before anything starts."""
    hold_audio = load_hold_audio(config.media.hold_audio)
    metrics = Metrics()
    async with (
        httpx.AsyncClient(timeout=config.twilio.request_timeout_s) as http,
        open_cluster(config) as cluster,
        open_transcript_hub(config, feeds=cluster.feeds, close_interrupted=False) as hub,
        trio.open_nursery() as nursery,
    ):
        orphaned = await _orphaned_calls(hub)
        control = TwilioRest(config, http)
        deps = CallDeps(
            config=config,
            control=control,
            open_link=_palabra_opener(config, http),
            # The hub, timing translations and folding each ended call into the metrics.
            transcripts=MeteredTranscriptSink(hub, metrics),
            # Operators with their languages ([[operators.team]] and operators.numbers): this
            # process's pool, or in cluster mode the one every instance shares.
            operators=cluster.operators,
            hold_audio=hold_audio,
        )
        supervisor = CallSupervisor(deps, cluster.admission)
        await nursery.start(supervisor.run)
        await _start_recovery(nursery, config, control, hub, cluster, supervisor, orphaned)
        services = Services(
            config,
            http,
            supervisor,
            hub,
            SignatureChecker(config),
            metrics=metrics,
            cluster=cluster,
        )
        metrics.watch(LiveDaemon(supervisor, hub), services.counters, config.server.max_calls)
        try:
            yield services
        finally:
            nursery.cancel_scope.cancel()


async def _start_recovery(
    nursery: trio.Nursery,
    config: Config,
    control: CallControl,
    hub: TranscriptHub,
    cluster: Cluster,
    supervisor: CallSupervisor,
    orphaned: list[dict[str, Any]],
) -> None:
    """End this instance's ``orphaned`` calls in the background; start the registry heartbeat
    (returns at once without a cluster), carrying load and draining, whose ``on_dead`` ends a
    dead instance's calls in the survivor that claims it."""
    owner = config.instance_id
    nursery.start_soon(partial(end_orphaned_calls, config, control, hub, orphaned, owner=owner))
    await nursery.start(
        cluster.run,
        lambda: InstanceStatus(supervisor.active_count, supervisor.draining),
        partial(_take_over, config, control, hub),
    )


async def _orphaned_calls(hub: TranscriptHub) -> list[dict[str, Any]]:
    """This instance's calls a previous process left live in the store (restart recovery)."""
    try:
        return await hub.store.own_live_calls()
    except StoreUnavailable as exc:
        log.error("recovery_skipped", error=str(exc))
        return []


async def _take_over(
    config: Config, control: CallControl, hub: TranscriptHub, dead: InstanceInfo
) -> None:
    """A dead instance this one claimed: its calls, ended at Twilio and marked ``interrupted``."""
    try:
        calls = await hub.store.live_calls(dead.instance_id)
    except StoreUnavailable as exc:
        log.error("takeover_skipped", instance=dead.instance_id, error=str(exc))
        return
    await end_orphaned_calls(config, control, hub, calls, owner=dead.instance_id)
