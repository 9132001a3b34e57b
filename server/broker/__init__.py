"""Brokers: the in-process one for a single node, Redis pub/sub for many, Redis Cluster sharded
pub/sub (a ``redis+cluster://`` URL) when one Redis is not enough."""

from __future__ import annotations

from .base import Broker, BrokerListener, BrokerMessage

__all__ = ["Broker", "BrokerListener", "BrokerMessage", "open_broker"]


def open_broker(redis_url: str | None, node_id: str | None = None) -> Broker:
    if redis_url and redis_url.startswith("redis+cluster://"):
        from .cluster import RedisClusterBroker

        return RedisClusterBroker(redis_url, node_id=node_id)
    if redis_url:
        from .redis import RedisBroker

        return RedisBroker(redis_url, node_id=node_id)
    from .memory import MemoryBroker

    return MemoryBroker(node_id=node_id)
