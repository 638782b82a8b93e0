"""Following a job's events from the API, without holding a thread: its Redis stream (the replayable
history) read after a pub/sub notification (or a short timeout, so a lost notification only
delays). Used by ``GET /v1/jobs/{id}/events`` and ``Prefer: wait``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from shared.domain.events import TERMINAL_EVENTS, channel, stream_key

DB_LOOK_EVERY = 5.0  # seconds between database looks while following a job


@dataclass
class StoredEvent:
    id: str  # the stream entry id, also the SSE event id (Last-Event-ID)
    type: str
    envelope: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class JobEvents:
    """``async with JobEvents(url, job_id) as ev: batch = await ev.after(last_id, timeout)``."""

    def __init__(self, redis_url: str, job_id) -> None:
        self.redis_url, self.job_id = redis_url, str(job_id)
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None

    async def __aenter__(self) -> JobEvents:
        self._redis = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
        try:
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(channel(self.job_id))  # before the first read: nothing slips between
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        with anyio.CancelScope(shield=True):  # close even when the stream was cancelled (client gone)
            if self._pubsub is not None:
                await self._pubsub.aclose()
            if self._redis is not None:
                await self._redis.aclose()

    async def read(self, after: str) -> list[StoredEvent]:
        """Events after ``after`` (a stream id; "0" for all), oldest first."""
        assert self._redis is not None
        found: Any = await self._redis.xread({stream_key(self.job_id): after}, count=500)  # [[key, entries]]
        events = []
        for _key, entries in found or []:
            for entry_id, fields in entries:
                ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                envelope = json.loads(fields[b"event"])
                events.append(StoredEvent(ident, fields[b"type"].decode(), envelope))
        return events

    async def after(self, after: str, timeout: float) -> list[StoredEvent]:
        """Events after ``after``; when there are none yet, wait up to ``timeout`` for a notification."""
        events = await self.read(after)
        if events:
            return events
        assert self._pubsub is not None
        await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        return await self.read(after)

    async def exists_after(self, after: str) -> bool:
        return bool(await self.read(after))


async def wait_for_terminal(redis_url: str, job_id, seconds: float, finished: Callable[[], Awaitable[bool]]) -> bool:
    """Wait up to ``seconds`` for the job's terminal event. ``finished`` (a database look) is asked
    every few seconds, and twice a second when Redis cannot be read, so a lost event only delays."""
    deadline = anyio.current_time() + seconds
    next_look = anyio.current_time() + DB_LOOK_EVERY
    try:
        async with JobEvents(redis_url, job_id) as ev:
            last = "0"
            while (remaining := deadline - anyio.current_time()) > 0:
                for event in await ev.after(last, min(remaining, 1.0)):
                    last = event.id
                    if event.terminal:
                        return True
                if anyio.current_time() >= next_look:
                    if await finished():
                        return True
                    next_look = anyio.current_time() + DB_LOOK_EVERY
    except (aioredis.RedisError, OSError):
        while anyio.current_time() < deadline:
            if await finished():
                return True
            await anyio.sleep(min(0.5, max(0.0, deadline - anyio.current_time())))
    return await finished()
