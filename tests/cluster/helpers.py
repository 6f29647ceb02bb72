"""Configs for cluster tests: one Redis server, a key prefix per test, several instances."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callbridge.cluster.redis_client import RedisAdapter, open_redis
from callbridge.config import (
    ClusterConfig,
    Config,
    OperatorsConfig,
    ServerConfig,
    TranscriptsConfig,
)


def cluster_config(
    redis_url: str,
    prefix: str,
    instance_id: str = "node-a",
    *,
    max_calls: int = 10,
    heartbeat_s: float = 2.0,
    numbers: list[str] | None = None,
    database_url: str = "postgresql://unused@127.0.0.1/x",
    state_dir: str = "state",
    **transcripts: object,
) -> Config:
    return Config(
        server=ServerConfig(max_calls=max_calls, state_dir=state_dir),
        operators=OperatorsConfig(numbers=numbers or []),
        cluster=ClusterConfig(
            redis_url=redis_url,
            instance_id=instance_id,
            instance_url=f"http://127.0.0.1/{instance_id}",
            key_prefix=prefix,
            heartbeat_s=heartbeat_s,
        ),
        transcripts=TranscriptsConfig(database_url=database_url, **transcripts),  # type: ignore[arg-type]
    )


@asynccontextmanager
async def adapter(
    redis_url: str, prefix: str, instance_id: str = "node-a"
) -> AsyncIterator[RedisAdapter]:
    async with open_redis(cluster_config(redis_url, prefix, instance_id)) as r:
        yield r
