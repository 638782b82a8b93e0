"""No job left behind: queued jobs whose broker message is gone are sent again.

A job is queued in PostgreSQL (the truth) and has a message in Redis. The message can vanish:
Redis restarted without persistence, or evicted keys, or a task failed before it claimed its
job (a database error at claim). Aging re-sends only jobs below priority 9 and the lease sweep
covers running jobs only, so such a job would wait forever. The sweep compares the queued jobs
older than a grace period with the ids the broker holds and returns the missing ones; the
caller sends them again at their queue priority. Sending a job twice is harmless: a delivery of
a job that is no longer queued is skipped at claim."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import col, select

from shared.domain.models import Job, JobStatus, utcnow
from shared.infra.db import session_scope


def stranded(present: set[str], grace_seconds: float, limit: int = 500) -> list[tuple[uuid.UUID, str, int]]:
    """(id, model, queue priority) of queued jobs older than ``grace_seconds`` whose id is not in
    ``present`` (the broker's task ids). The grace covers a submit between its commit and its send."""
    since = utcnow() - timedelta(seconds=grace_seconds)
    with session_scope() as s:
        rows = s.exec(
            select(col(Job.id), col(Job.model), col(Job.queue_priority))
            .where(col(Job.status) == JobStatus.queued.value, col(Job.created_at) < since)
            .order_by(col(Job.created_at))
            .limit(limit)
        ).all()
    return [(r[0], r[1], r[2]) for r in rows if str(r[0]) not in present]
