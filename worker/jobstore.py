"""The worker's reads and writes of job rows. Every state change is one conditional UPDATE, so
two deliveries of the same task can never both run it: the first claims a lease, the other backs off.
Each state change records its job event in the same transaction (webhook deliveries included) and
publishes it after the commit (shared/domain/events.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Integer, cast, func, update
from sqlmodel import col, select

from shared.domain import events
from shared.infra.db import session_scope
from shared.domain.models import Job, JobStatus, Sound, utcnow

RUNNING = JobStatus.running.value


def claim(job_id: uuid.UUID, worker: str, lease_seconds: int) -> Job | None:
    """Take the job if it is queued, or running under an expired lease (its worker died)."""
    now = utcnow()
    with session_scope() as s:
        job = s.scalars(
            update(Job)
            .where(col(Job.id) == job_id)
            .where((col(Job.status) == JobStatus.queued.value)
                   | ((col(Job.status) == RUNNING) & (col(Job.lease_expires_at) < now)))
            .values(status=RUNNING, worker=worker, lease_expires_at=now + timedelta(seconds=lease_seconds),
                    started_at=func.coalesce(col(Job.started_at), now), deliveries=col(Job.deliveries) + 1)
            .returning(Job)
        ).first()
        event = events.record(s, job, "job.started") if job is not None else None
    events.publish(event)
    return job


def get(job_id: uuid.UUID) -> Job | None:
    with session_scope() as s:
        return s.get(Job, job_id)


def heartbeat(job_id: uuid.UUID, worker: str, lease_seconds: int, progress: float | None = None) -> bool | None:
    """Renew the lease (and store progress). Returns cancel_requested, or None when the lease was lost."""
    values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = func.greatest(col(Job.progress), progress)
    with session_scope() as s:
        row = s.exec(
            update(Job).where(col(Job.id) == job_id, col(Job.status) == RUNNING, col(Job.worker) == worker)
            .values(**values).returning(col(Job.cancel_requested))
        ).first()
    return None if row is None else bool(row[0])


def record_attempt(job_id: uuid.UUID, worker: str, attempt: dict[str, Any]) -> None:
    with session_scope() as s:
        job = s.scalars(update(Job).where(col(Job.id) == job_id, col(Job.worker) == worker)
                        .values(attempts=col(Job.attempts) + 1, attempt_log=col(Job.attempt_log).op("||")([attempt]))
                        .returning(Job)).first()
        event = events.record(s, job, "job.attempt", extra={"attempt": attempt}) if job is not None else None
    events.publish(event)


def succeed(job_id: uuid.UUID, worker: str, sound: Sound, kept_from_end: int | None = None) -> bool:
    """Insert the sound and finish the job in one transaction, only while this worker holds it.
    ``kept_from_end``: which attempt became the result, counted back from the last one logged
    (0: the last); that attempt_log entry gets ``"kept": true``."""
    with session_scope() as s:
        job = s.exec(select(Job).where(col(Job.id) == job_id).with_for_update()).first()
        if job is None or job.status != RUNNING or job.worker != worker:
            return False
        s.add(sound)
        s.flush()
        log = list(job.attempt_log or [])
        if kept_from_end is not None and 0 <= kept_from_end < len(log):
            kept = len(log) - 1 - kept_from_end
            job.attempt_log = [dict(entry, kept=i == kept) if isinstance(entry, dict) else entry
                               for i, entry in enumerate(log)]
        job.status, job.progress, job.finished_at = JobStatus.succeeded.value, 1.0, utcnow()
        job.result_sound_id, job.lease_expires_at, job.error = sound.id, None, None
        s.add(job)
        event = events.record(s, job, "job.succeeded", sound=sound)
    events.publish(event)
    return True


def finish(job_id: uuid.UUID, worker: str | None, status: JobStatus, error: str) -> None:
    """End a job failed or canceled (only while this worker holds it, when a worker is given)."""
    with session_scope() as s:
        q = update(Job).where(col(Job.id) == job_id, col(Job.status).in_([RUNNING, JobStatus.queued.value]))
        if worker is not None:
            q = q.where(col(Job.worker) == worker)
        job = s.scalars(q.values(status=status.value, error=error[:2000], finished_at=utcnow(), lease_expires_at=None)
                        .returning(Job)).first()
        event = events.record(s, job, events.STATUS_EVENTS[status.value]) if job is not None else None
    events.publish(event)


def expired_leases(limit: int = 50) -> list[Job]:
    """Running jobs whose worker stopped renewing its lease, locked so one worker recovers each."""
    with session_scope() as s:
        jobs = s.exec(
            select(Job).where(col(Job.status) == RUNNING, col(Job.lease_expires_at) < utcnow())
            .order_by(col(Job.lease_expires_at)).limit(limit).with_for_update(skip_locked=True)
        ).all()
        for job in jobs:  # requeue: a fresh delivery will claim it
            job.status, job.worker, job.lease_expires_at = JobStatus.queued.value, None, None
            s.add(job)
        requeued = [events.record(s, job, "job.queued") for job in jobs]
    events.publish(*requeued)
    return list(jobs)


def promote_aged(aging_seconds: float, limit: int = 500) -> list[tuple[uuid.UUID, str, int]]:
    """Aging: raise each waiting job's queue priority by one per ``aging_seconds`` waited (up to 9).
    Returns (id, model, new priority) of the jobs raised; the caller sends them again at that
    priority (the older, lower message is skipped when it comes: the job is no longer queued)."""
    waited = func.extract("epoch", func.now() - col(Job.created_at))
    effective = cast(func.least(9, col(Job.priority) + func.floor(waited / aging_seconds)), Integer)
    with session_scope() as s:
        due = select(col(Job.id)).where(col(Job.status) == JobStatus.queued.value,
                                        effective > col(Job.queue_priority)).limit(limit)
        rows = s.exec(update(Job).where(col(Job.id).in_(due), effective > col(Job.queue_priority))
                      .values(queue_priority=effective)
                      .returning(col(Job.id), col(Job.model), col(Job.queue_priority))).all()
    return [tuple(r) for r in rows]


def next_for_model(model: str, other_models: list[str]) -> uuid.UUID | None:
    """Model affinity: the best waiting job of ``model``, unless a job of another model this worker
    serves waits at a strictly higher priority."""
    with session_scope() as s:
        best = s.exec(select(col(Job.id), col(Job.queue_priority))
                      .where(col(Job.status) == JobStatus.queued.value, col(Job.model) == model)
                      .order_by(col(Job.queue_priority).desc(), col(Job.created_at)).limit(1)).first()
        if best is None:
            return None
        if other_models and s.exec(select(col(Job.id)).where(
                col(Job.status) == JobStatus.queued.value, col(Job.model).in_(other_models),
                col(Job.queue_priority) > best[1]).limit(1)).first():
            return None
        return best[0]
