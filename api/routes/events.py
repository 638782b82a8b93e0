"""GET /v1/jobs/{id}/events: a job's events as Server-Sent Events, live from any API process.

The job's Redis stream is the history: a client that reconnects with ``Last-Event-ID`` gets what
it missed, then live events (pub/sub tells every API process when something was appended). The
stream ends after the terminal event; reconnecting after it answers 204, which tells
``EventSource`` to stop. The database backs it all up: when the stream is quiet the job row is
looked at, so a job whose history expired (or whose event never reached Redis) still ends.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api import live
from api.auth import CurrentPrincipal
from api.deps import SessionDep, SettingsDep
from api.owned import owned_job
from shared.domain import events, jobs
from shared.domain.models import TERMINAL_STATUSES, Job, Sound

router = APIRouter(tags=["jobs"])
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
PING_SECONDS = 15


def _absolute(envelope: dict[str, Any], base: str) -> dict[str, Any]:
    """Result URLs relative to the API (no SOUNDBOX_PUBLIC_URL) made absolute for this client."""
    result = (envelope.get("data") or {}).get("result") or {}
    for name in ("audio_url", "spectrogram_url"):
        if str(result.get(name, "")).startswith("/"):
            result[name] = base.rstrip("/") + result[name]
    return envelope


def _sse(event_type: str, envelope: dict[str, Any], base: str, ident: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(_absolute(envelope, base)), event=event_type, id=ident)


def _from_row(snapshot: tuple[Job, Sound | None], base: str) -> ServerSentEvent:
    """An event made from the job row (no id: it is not in the stream)."""
    job, sound = snapshot
    kind = events.STATUS_EVENTS[job.status]
    return _sse(kind, events.envelope(job, kind, sound, base_url=base), base)


async def _follow(job_id: uuid.UUID, last: str, redis_url: str, base: str) -> AsyncIterator[ServerSentEvent]:
    next_look = 0.0  # look at the database at the first quiet moment
    try:
        async with live.JobEvents(redis_url, job_id) as ev:
            while True:
                batch = await ev.after(last, 1.0)
                for event in batch:
                    last = event.id
                    yield _sse(event.type, event.envelope, base, event.id)
                    if event.terminal:
                        return
                if batch or anyio.current_time() < next_look:
                    continue
                snapshot = await jobs.read_async(job_id)
                next_look = anyio.current_time() + live.DB_LOOK_EVERY
                if snapshot is None:
                    return
                if snapshot[0].status in TERMINAL_STATUSES:
                    for event in await ev.read(last):  # its event may just be arriving
                        yield _sse(event.type, event.envelope, base, event.id)
                        if event.terminal:
                            return
                    yield _from_row(snapshot, base)
                    return
    except (RedisError, OSError):
        # Redis unreachable: follow the row instead (status changes, without ids).
        seen = None
        while True:
            snapshot = await jobs.read_async(job_id)
            if snapshot is None:
                return
            if snapshot[0].status != seen:
                seen = snapshot[0].status
                yield _from_row(snapshot, base)
                if seen in TERMINAL_STATUSES:
                    return
            await anyio.sleep(1.0)


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events; each `data` is `{type, timestamp, data: job}`",
        },
        204: {"description": "Last-Event-ID was the job's last event: nothing more will come"},
    },
)
async def job_events(
    job_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
):
    """Follow a job: `job.queued`, `job.started`, `job.progress` (at most one a second), `job.attempt`
    (each generation attempt with its quality report), then one of `job.succeeded`, `job.failed`,
    `job.canceled`, after which the stream ends. Reconnect with `Last-Event-ID` to resume."""
    if last_event_id is not None and not EVENT_ID.match(last_event_id.strip()):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header", "Last-Event-ID"),
                    "msg": "must be an id this stream sent, like 1764133200000-0",
                    "input": last_event_id,
                }
            ]
        )
    last = last_event_id.strip() if last_event_id else "0"
    job = await run_in_threadpool(owned_job, session, job_id, principal)
    await run_in_threadpool(session.close)  # hold no database connection while streaming
    if last_event_id and job.status in TERMINAL_STATUSES:
        try:
            async with live.JobEvents(settings.redis_url, job_id) as ev:
                caught_up = not await ev.exists_after(last)
        except (RedisError, OSError):
            caught_up = True
        if caught_up:
            return Response(status_code=204)
    base = settings.public_url or str(request.base_url)
    return EventSourceResponse(
        _follow(job_id, last, settings.redis_url, base),
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
