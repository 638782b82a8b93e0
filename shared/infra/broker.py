"""What the broker holds: the job ids of every generation message waiting in a Redis queue (at
any priority) or delivered but not yet acknowledged. Read by the reconciler to find queued jobs
whose message is gone (Redis restarted without persistence, a task that failed before it
claimed its job)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

SEP = ":"  # broker_transport_options["sep"] in shared/infra/celery_app.py
PRIORITY_STEPS = range(10)
UNACKED = "unacked"  # kombu's Redis transport: delivered, unacknowledged messages


def queue_keys(queue: str) -> list[str]:
    """The Redis lists of ``queue``: the bare name is step 0, ``name:N`` the others."""
    return [queue if step == 0 else f"{queue}{SEP}{step}" for step in PRIORITY_STEPS]


def _task_id(raw: bytes | str) -> str | None:
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacked entries: [message, exchange, routing_key]
            message = message[0]
        return message["headers"]["id"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def pending_task_ids(client: redis.Redis, queues: Iterable[str]) -> set[str]:
    """Task ids (our job ids) of messages waiting in ``queues`` or delivered and unacknowledged."""
    ids: set[str] = set()
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in queue_keys(queue):
            pipe.lrange(key, 0, -1)
    for items in pipe.execute():
        ids.update(filter(None, map(_task_id, items)))
    ids.update(filter(None, map(_task_id, client.hvals(UNACKED))))
    return ids
