"""Job events: every state change of a job, told to whoever listens.

Whoever changes a job's state (shared/domain/jobs.py, for the API and the worker alike) calls
``record`` inside the transaction that makes the change: it builds the event from the job row as
it now stands and, when the job's webhook wants this event type, writes the webhook delivery in
that same transaction (an outbox row: a committed state change always has its delivery). After
the commit, ``publish`` appends the event to the job's Redis stream (capped, expiring), notifies
live listeners over pub/sub, and hands the deliveries to the webhook queue. Publishing never
raises: a Redis hiccup costs live listeners an event (they fall back to the database), and the
webhook worker's sweep sends any delivery whose dispatch was lost.

Event types (``EventType``, shared/domain/schemas.py): ``job.queued``, ``job.started``,
``job.progress`` (at most one a second), ``job.attempt``, ``job.succeeded``, ``job.failed``, ``job.canceled``. Each event is
``{type, timestamp, data}`` with the job object (as ``GET /v1/jobs/{id}`` shows it) as data;
``job.attempt`` adds ``attempt`` (the attempt's log entry).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import redis
import structlog

from shared.domain import limits
from shared.domain.jobview import job_out
from shared.domain.models import Job, JobStatus, Sound, WebhookDelivery, utcnow
from shared.domain.schemas import TERMINAL_EVENTS, EventType

__all__ = ["STATUS_EVENTS", "TERMINAL_EVENTS", "Event", "EventType", "build", "emit", "publish", "record"]
from shared.settings import get_settings

log = structlog.get_logger()

STREAM_PREFIX = "soundbox:events:job:"  # a Redis stream per job: the replayable history
CHANNEL_PREFIX = "soundbox:events:notify:"  # pub/sub: "something was appended"
STREAM_MAXLEN = 1000
# The event a job's entering each status is told with.
STATUS_EVENTS: dict[JobStatus, EventType] = {
    JobStatus.queued: EventType.queued,
    JobStatus.running: EventType.started,
    JobStatus.succeeded: EventType.succeeded,
    JobStatus.failed: EventType.failed,
    JobStatus.canceled: EventType.canceled,
}
PROGRESS_INTERVAL = 1.0  # seconds between job.progress events of one job, at least


def stream_key(job_id) -> str:
    return f"{STREAM_PREFIX}{job_id}"


def channel(job_id) -> str:
    return f"{CHANNEL_PREFIX}{job_id}"


@dataclass
class Event:
    job_id: str
    envelope: dict[str, Any]
    deliveries: list[str] = field(default_factory=list)
    account_id: str = ""  # whose limits the change touches (shared/domain/limits.on_event)

    @property
    def type(self) -> str:
        return self.envelope["type"]


def envelope(
    job: Job, event_type: EventType, sound: Sound | None = None, *, base_url: str = "", when: datetime | None = None
) -> dict[str, Any]:
    return {
        "type": EventType(event_type).value,
        "timestamp": (when or utcnow()).isoformat(),
        "data": job_out(job, sound, base_url=base_url).model_dump(mode="json"),
    }


def record(
    session, job: Job, event_type: EventType, *, sound: Sound | None = None, extra: dict[str, Any] | None = None
) -> Event:
    """Build the event from ``job`` (already changed in this session) and add the webhook delivery
    it owes to the session. Call ``publish`` with the result after the commit."""
    if sound is None and job.result_sound_id is not None:
        sound = session.get(Sound, job.result_sound_id)
    event, owed = build(job, event_type, sound=sound, extra=extra)
    for delivery in owed:
        session.add(delivery)
    return event


def build(
    job: Job, event_type: EventType, *, sound: Sound | None = None, extra: dict[str, Any] | None = None
) -> tuple[Event, list[WebhookDelivery]]:
    """``record`` without a session: the event and the webhook delivery rows it owes, for a caller
    that writes them itself (shared/domain/jobs.submit_async)."""
    settings = get_settings()
    event_type = EventType(event_type)
    now = utcnow()
    body = envelope(job, event_type, sound, base_url=settings.public_url, when=now)
    event = Event(str(job.id), {**body, **(extra or {})}, account_id=str(job.account_id))
    owed = []
    if job.webhook_url and event_type in (job.webhook_events or []):
        delivery = WebhookDelivery(
            id=uuid.uuid4(),
            created_at=now,
            job_id=job.id,
            account_id=job.account_id,
            event_type=event_type.value,
            url=job.webhook_url,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            payload=body,
            next_attempt_at=now,
            dispatched_at=now,
        )
        owed.append(delivery)
        event.deliveries.append(str(delivery.id))
    return event, owed


@lru_cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    """This process's synchronous client of the service's Redis (events, limits)."""
    return _redis(get_settings().redis_url)


def publish(*events: Event | None) -> None:
    """After the commit: append to the job's stream, notify listeners, dispatch webhook deliveries."""
    settings = get_settings()
    for event in events:
        if event is None:
            continue
        try:
            pipe = _redis(settings.redis_url).pipeline(transaction=True)
            publish_commands(pipe, event, settings.events_ttl_seconds)
            pipe.execute()
        except Exception as exc:  # listeners fall back to the database; never fail the state change
            log.warning("job event not published", job_id=event.job_id, type=event.type, error=str(exc))
        dispatch(event.deliveries)


def publish_commands(pipe: Any, event: Event, ttl_seconds: int) -> None:
    """``publish``'s Redis commands for one event, queued in the caller's pipeline (an asyncio
    pipeline too: shared/domain/jobs.submit_async sends the event and the task in one round trip)."""
    key = stream_key(event.job_id)
    pipe.xadd(key, {"type": event.type, "event": orjson.dumps(event.envelope)}, maxlen=STREAM_MAXLEN, approximate=True)
    pipe.expire(key, ttl_seconds)
    pipe.publish(channel(event.job_id), event.type)
    limits.on_event(pipe, event.job_id, event.account_id, event.type)


# A new job's job.queued event and its task in one atomic script: what ``publish_commands`` and an
# LPUSH do for it, as one command (limits.admit has already counted the job).
# KEYS: the job's stream, the task's list. ARGV: type, event JSON, stream cap, TTL, channel, message.
_PUBLISH_AND_SEND = """
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'type', ARGV[1], 'event', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[6])
return 1
"""


@lru_cache
def _publish_and_send_script(client: Any) -> Any:
    return client.register_script(_PUBLISH_AND_SEND)  # one registered script per client (EVALSHA)


async def publish_and_send(client: Any, event: Event, ttl_seconds: int, list_key: str, message: bytes) -> None:
    """Publish a new job's ``job.queued`` event, then push its task, atomically, on a
    ``redis.asyncio`` client (shared/domain/jobs.submit_async): listeners always see job.queued
    first, and a task is never sent without it."""
    keys = [stream_key(event.job_id), list_key]
    args = [event.type, orjson.dumps(event.envelope), STREAM_MAXLEN, ttl_seconds, channel(event.job_id), message]
    await _publish_and_send_script(client)(keys=keys, args=args)


def dispatch(delivery_ids: list[str]) -> None:
    """Send deliveries to the webhook queue; one that cannot be sent is found by the worker's sweep."""
    if not delivery_ids:
        return
    from shared.infra.celery_app import enqueue_webhook

    for delivery_id in delivery_ids:
        try:
            enqueue_webhook(delivery_id)
        except Exception as exc:
            log.warning("webhook dispatch deferred to the sweep", delivery_id=delivery_id, error=str(exc))


def emit(job_id: uuid.UUID, event_type: EventType, *, only_status: JobStatus | None = None) -> None:
    """Record and publish an event in a transaction of its own (for events that change no state,
    such as progress). Skipped when the job is gone or, with ``only_status``, not in that status."""
    from shared.infra.db import session_scope

    try:
        with session_scope() as s:
            job = s.get(Job, job_id)
            if job is None or (only_status is not None and job.status != only_status):
                return
            event = record(s, job, event_type)
        publish(event)
    except Exception as exc:
        log.warning("job event failed", job_id=str(job_id), type=event_type, error=str(exc))


class Throttle:
    """True at most once per ``interval`` seconds (progress events: at most one a second)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.interval, self.clock = interval, clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True
