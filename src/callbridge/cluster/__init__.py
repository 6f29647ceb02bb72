"""Cluster mode: several callbridge instances behind one Twilio number, on Redis (docs/cluster.md).

Entry point: ``open_cluster(config)``; without ``cluster.redis_url`` it yields the single-instance
stand-ins, so callers need no branch.
"""

from __future__ import annotations

from callbridge.cluster.admission import Admission, LocalAdmission, RedisAdmission
from callbridge.cluster.node import Cluster, DeadInstanceHandler, open_cluster
from callbridge.cluster.operators import RedisOperatorPool
from callbridge.cluster.registry import InstanceInfo, InstanceStatus, Registry
from callbridge.cluster.streams import StreamFeeds

__all__ = [
    "Admission",
    "Cluster",
    "DeadInstanceHandler",
    "InstanceInfo",
    "InstanceStatus",
    "LocalAdmission",
    "RedisAdmission",
    "RedisOperatorPool",
    "Registry",
    "StreamFeeds",
    "open_cluster",
]
