"""Worker presence in Redis: each worker announces its queues and loaded models with a TTL."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

PREFIX = "soundbox:worker:"
TTL_SECONDS = 30


def announce(client: redis.Redis, name: str, info: dict[str, Any]) -> None:
    client.set(PREFIX + name, json.dumps({**info, "name": name, "seen_at": time.time()}), ex=TTL_SECONDS)


def withdraw(client: redis.Redis, name: str) -> None:
    client.delete(PREFIX + name)


def workers(client: redis.Redis) -> list[dict[str, Any]]:
    keys = sorted(client.scan_iter(PREFIX + "*", count=200))
    return [json.loads(v) for v in client.mget(keys) if v] if keys else []


class Presence:
    """One process's entry in the registry, and the stop flag of its background loop."""

    def __init__(self, redis_url: str):
        import os
        import socket
        import threading

        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.redis = redis.Redis.from_url(redis_url)
        self.stopped = threading.Event()

    def announce(self, info: dict[str, Any]) -> None:
        announce(self.redis, self.name, info)

    def stop(self) -> None:
        """Stop the background loop and leave the registry (best effort)."""
        self.stopped.set()
        try:
            withdraw(self.redis, self.name)
        except redis.RedisError:
            pass
