"""The long-lived objects one daemon shares between its web routes and its calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import attrs
import httpx
import trio

from callbridge.audio import load_hold_audio
from callbridge.calls.ports import LinkOpener, TranslatorLink
from callbridge.calls.session import CallDeps
from callbridge.calls.supervisor import CallSupervisor
from callbridge.cluster import Cluster, InstanceStatus, open_cluster
from callbridge.config import Config
from callbridge.metrics import Metrics
from callbridge.metrics.live import LiveDaemon
from callbridge.metrics.sink import MeteredTranscriptSink
from callbridge.palabra.task import TaskSettings
from callbridge.roles import Direction
from callbridge.routing import LanguageOperatorPool
from callbridge.telephony.rest import TwilioRest
from callbridge.telephony.signature import SignatureChecker
from callbridge.transcripts import TranscriptHub, open_transcript_hub

__all__ = ["Services", "open_services"]


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

    Error handling: a hold file that cannot be used raises ``ConfigError`` before anything starts."""
    hold_audio = load_hold_audio(config.media.hold_audio)
    metrics = Metrics()
    async with (
        httpx.AsyncClient(timeout=config.twilio.request_timeout_s) as http,
        open_cluster(config) as cluster,
        open_transcript_hub(config, feeds=cluster.feeds) as hub,
        trio.open_nursery() as nursery,
    ):
        deps = CallDeps(
            config=config,
            control=TwilioRest(config, http),
            open_link=_palabra_opener(config, http),
            # The hub, timing translations and folding each ended call into the metrics.
            transcripts=MeteredTranscriptSink(hub, metrics),
            # Operators with their languages: [[operators.team]] and operators.numbers.
            operators=LanguageOperatorPool.from_config(config),
            hold_audio=hold_audio,
        )
        supervisor = CallSupervisor(deps)
        await nursery.start(supervisor.run)
        # Registry heartbeat (returns at once without a cluster); dead instances are only logged
        # until the call code hands Cluster.run an on_dead that ends their calls at Twilio.
        await nursery.start(
            cluster.run, lambda: InstanceStatus(supervisor.active_count, supervisor.draining)
        )
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
