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
