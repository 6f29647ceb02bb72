"""The daemon's services in cluster mode: registered while up, gone after a clean exit."""

from __future__ import annotations

from pathlib import Path

import trio

from callbridge.cluster import open_cluster
from callbridge.services import open_services

from .helpers import cluster_config


async def test_services_join_heartbeat_and_leave_the_cluster(
    redis_server: str, redis_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    config = cluster_config(
        redis_server, redis_prefix, "node-1", database_url=pg_url, state_dir=str(tmp_path)
    )
    watcher_config = cluster_config(redis_server, redis_prefix, "watcher", database_url=pg_url)
    with trio.fail_after(30):
        async with open_cluster(watcher_config) as watcher:
            assert watcher.registry is not None
            async with open_services(config) as services:
                assert services.cluster is not None and services.cluster.enabled
                [info] = await watcher.registry.instances()
                assert (info.instance_id, info.alive, info.load, info.draining) == (
                    "node-1",
                    True,
                    0,
                    False,
                )
                assert info.instance_url == "http://127.0.0.1/node-1"
                assert services.transcripts.feeds is services.cluster.feeds
            assert await watcher.registry.instances() == []  # left cleanly: nobody claims it


async def test_an_instance_on_postgresql_is_ready(
    redis_server: str, redis_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    """``/readyz`` of a cluster instance: a PostgreSQL store has no directory to check (this
    raised ``AttributeError`` on every readiness check, so no balancer would send a call)."""
    from callbridge.metrics.live import LiveDaemon
    from callbridge.service.health import Readiness

    config = cluster_config(
        redis_server, redis_prefix, "node-1", database_url=pg_url, state_dir=str(tmp_path)
    )
    with trio.fail_after(30):
        async with open_services(config) as services:
            live = LiveDaemon(services.supervisor, services.transcripts)
            assert live.store().directory_writable
            assert Readiness(live, config.server.max_calls).check().ready
