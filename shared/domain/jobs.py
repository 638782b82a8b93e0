"""Every change of a job's state, for the API and the worker alike.

Each change is one conditional statement (``UPDATE … WHERE <the state it changes from> …``):
two deliveries of one task, a cancel racing a claim, two workers sweeping the same expired lease
can never both win. Each records its job event (and the webhook delivery it owes) in the same
transaction with ``events.record`` and publishes it after the commit (shared/domain/events.py).

    submit ─▶ queued ─claim─▶ running ─succeed─▶ succeeded
                 │  ▲            │ └─finish──▶ failed | canceled
          cancel │  └─requeue_expired (lease lost)
                 ▼
              canceled

The API's calls take its request's session and own that transaction; the worker's open their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
import structlog
from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, Integer, and_, bindparam, cast, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from shared.domain import events, idempotency, limits, prompts
from shared.domain.catalog import ModelId, ModelSpec
from shared.domain.errors import InvalidField, JobFinished, QueueUnavailable
from shared.domain.events import EventType
from shared.domain.models import Account, IdempotencyKey, Job, JobStatus, Sound, WebhookDelivery, utcnow
from shared.domain.params import params_for
from shared.domain.schemas import DEFAULT_WEBHOOK_EVENTS, GenerationCreate
from shared.domain.tiers import TierLimits, limits_for
from shared.domain.webhooks import Allowlist, UnsafeWebhookURL, resolve_checked
from shared.infra import aiodb
from shared.infra.celery_app import enqueue_job, job_message
from shared.infra.db import session_scope
from shared.infra.ratelimit import BucketResult
from shared.settings import Settings
from shared.speech.voices import discover_voices

log = structlog.get_logger()
QUEUED, RUNNING = JobStatus.queued, JobStatus.running
Enqueue = Callable[[str, str, int], Any]  # (job id, queue, priority): sends the job's task


# --- the API's half: submit and cancel ---------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    job: Job
    replayed: bool  # True: an earlier request with the same idempotency key made this job
    rate: BucketResult | None = None  # the caller's rate limit after the charge, when it was charged
    sound: Sound | None = None  # a replayed job's result, when it has one (submit_async)


@dataclass(frozen=True)
class _Plan:
    """A submission checked and shaped, nothing written yet."""

    job: Job
    spec: ModelSpec
    tier_name: str
    tier: TierLimits
    digest: str  # of the request, when an idempotency key came with it


def _plan(
    account: Account,
    request: GenerationCreate,
    catalog: dict[str, ModelSpec],
    settings: Settings,
    key: str | None,
    make: Callable[..., Job] = Job,
) -> _Plan:
    """``make``: ``Job`` for a row a session will add; ``Job.model_construct`` (a sixth of the
    cost: no ORM instrumentation) for one written by statement (submit_async)."""
    request, guidance = prompts.guide_submission(request)  # resolves "auto"; the prompt's warnings go on the job
    spec = catalog[request.model]
    if not spec.uses_duration and request.voice is not None:
        _check_voice(settings, request.voice)
    tier_name = account.tier
    tier = limits_for(settings.tiers, tier_name)
    params = params_for(request, spec, tier_name, tier)
    webhook_url, webhook_events = _webhook_target(request, settings)
    priority = tier.clamp_priority(request.priority)
    job = make(  # every field with a default factory given: pydantic inspects each factory it calls
        id=uuid.uuid4(),
        created_at=utcnow(),
        attempt_log=[],
        account_id=account.id,
        model=spec.id,
        params=params.to_row(),
        priority=priority,
        queue_priority=priority,
        webhook_url=webhook_url,
        webhook_events=webhook_events,
        warnings=guidance.warnings,
        model_choice=guidance.model_choice,
    )
    return _Plan(job, spec, tier_name, tier, idempotency.request_hash(request) if key else "")


_JOBS = Job.__table__  # type: ignore[attr-defined]
_JOB_COLUMNS = tuple(_JOBS.columns)
_INSERT_JOB = insert(Job.__table__)  # type: ignore[attr-defined]  # one compiled statement, values as parameters


@lru_cache
def _admit_script(client: Any) -> Any:
    return client.register_script(limits.ADMIT_LUA)  # one registered script per client (EVALSHA)


def submit(
    *,
    session: Session,
    account: Account,
    request: GenerationCreate,
    catalog: dict[str, ModelSpec],
    settings: Settings,
    idempotency_key: str | None = None,
    enqueue: Enqueue = enqueue_job,
) -> Submission:
    """Validate, record and enqueue a job for ``account``; or, with an ``idempotency_key`` an earlier
    request of the same body used, return the job that request made (``replayed``). The API's
    route uses :func:`submit_async`, the same steps on an event loop.

    Refusals leave nothing behind (no row, no key, no place in the limits): ``InvalidField`` (a
    rule of the model or the tier), ``LimitReached`` (tier limits, service capacity: admitted
    atomically in Redis, shared/domain/limits.py), ``IdempotencyConflict`` (the key belongs to
    another body).

    Delivery guarantee: the job row, its idempotency key and its ``job.queued`` event commit in
    one transaction *before* the task is sent, so a worker never receives a job that does not
    exist and two racing requests with one key make one job (the second waits on the key's row,
    then replays). If the broker refuses the task, the same row is marked ``failed`` (its
    ``job.failed`` event recorded), the key is released so a retry may try again, and
    ``QueueUnavailable`` is raised: nothing the caller was told is accepted ever waits without a
    message. Once ``enqueue`` returned, the broker holds the task until a worker acknowledges it
    after running it (late acks), and leases recover jobs whose worker died. The one gap, a
    process killed between the commit and the send, is closed by the reconciler
    (shared/domain/reconcile.py), which sends a queued job whose message is gone again.
    """
    key = idempotency_key
    plan = _plan(account, request, catalog, settings, key)
    job = plan.job
    if key and (earlier := idempotency.lookup(session, account.id, key)) is not None:
        return Submission(idempotency.replay(session, earlier, plan.digest, key), replayed=True)
    client = events.redis_client()
    adm = limits.admission(job, plan.tier_name, plan.tier, settings.max_queued_jobs)
    try:
        reply = _admit_script(client)(keys=adm.keys, args=adm.args)
    except redis.RedisError as exc:
        raise QueueUnavailable("the job queue is unavailable; try again shortly") from exc
    limits.verdict(adm, reply, settings.max_queued_jobs)
    try:
        session.add(job)
        session.flush()
        if key and not idempotency.remember(
            session, account.id, key, plan.digest, job.id, settings.idempotency_ttl_seconds
        ):
            session.rollback()  # a concurrent request with this key made its job first: answer with that one
            _release(client, job)
            return Submission(
                idempotency.replay(session, idempotency.lookup(session, account.id, key), plan.digest, key),
                replayed=True,
            )
        queued = events.record(session, job, EventType.queued)
        session.commit()
    except BaseException:
        _release(client, job)
        raise
    events.publish(queued)  # before the task is sent, so job.queued is always the first event
    try:
        enqueue(str(job.id), plan.spec.queue, job.priority)
    except Exception as exc:  # broker down: nothing was accepted, say so and keep the row honest
        log.error("enqueue failed", job_id=str(job.id), error=str(exc))
        _fail_unsent(session, job, key)
        raise QueueUnavailable("the job queue is unavailable; try again shortly") from exc
    log.info("job queued", job_id=str(job.id), model=job.model, priority=job.priority)
    return Submission(job, replayed=False)


def _release(client: Any, job: Job) -> None:
    """Give back the places ``admit`` took for a job whose row was not committed."""
    try:
        pipe = client.pipeline(transaction=False)
        limits.release_commands(pipe, job.id, job.account_id)
        pipe.execute()
    except Exception as exc:  # the sweep takes the entry back later
        log.warning("limit release deferred to the sweep", job_id=str(job.id), error=str(exc))


async def submit_async(
    *,
    redis_client: Any,
    account: Account,
    request: GenerationCreate,
    catalog: dict[str, ModelSpec],
    settings: Settings,
    idempotency_key: str | None = None,
    bucket: limits.Bucket | None = None,
) -> Submission:
    """:func:`submit` on an event loop (the API's route): the same checks, limits, transaction and
    guarantee, with no thread hop on the common path. ``redis_client`` is a ``redis.asyncio``
    client of the broker; ``bucket``, the caller's rate limit, is charged by the same script that
    admits the job (``RateLimited`` when it is empty). The database work is psycopg's async pool
    (shared/infra/aiodb.py): without a key or a webhook the row is one autocommit INSERT, else one
    pipelined transaction. The ``job.queued`` event and the task go to Redis in one script, event
    first (events.publish_and_send); the task is the LPUSH of the message ``enqueue_job`` would
    send (shared/infra/celery_app.job_message). Checks that may block (a webhook host's resolution,
    the voice files) run in a thread."""
    key = idempotency_key
    if request.webhook_url is not None or request.voice is not None:
        plan = await asyncio.to_thread(_plan, account, request, catalog, settings, key, Job.model_construct)
    else:
        plan = _plan(account, request, catalog, settings, key, Job.model_construct)
    job = plan.job
    if key and (earlier := await idempotency.lookup_async(account.id, key)) is not None:
        return await _replay_async(earlier, plan.digest, key)
    adm = limits.admission(job, plan.tier_name, plan.tier, settings.max_queued_jobs, bucket)
    rate = limits.verdict(
        adm, await _admit_script(redis_client)(keys=adm.keys, args=adm.args), settings.max_queued_jobs
    )
    queued, owed = events.build(job, EventType.queued)
    try:
        if not await _insert_async(job, owed, key, plan.digest, settings):
            assert key is not None  # only a key can be taken: a concurrent request with it made its job first
            await _release_async(redis_client, job)
            return await _replay_async(await idempotency.lookup_async(account.id, key), plan.digest, key)
    except BaseException:
        await _release_async(redis_client, job)
        raise
    list_key, message = job_message(str(job.id), plan.spec.queue, job.priority)
    try:
        await events.publish_and_send(redis_client, queued, settings.events_ttl_seconds, list_key, message)
    except Exception as exc:  # broker down: nothing was accepted, say so and keep the row honest
        log.error("enqueue failed", job_id=str(job.id), error=str(exc))
        await _fail_unsent_async(redis_client, job, key, settings)
        raise QueueUnavailable("the job queue is unavailable; try again shortly") from exc
    if queued.deliveries:
        await asyncio.to_thread(events.dispatch, queued.deliveries)
    return Submission(job, replayed=False, rate=rate)


_INSERT_JOB_Q = aiodb.Query(_INSERT_JOB)
_INSERT_DELIVERY = aiodb.Query(insert(WebhookDelivery.__table__))  # type: ignore[attr-defined]
_DELIVERY_COLUMNS = tuple(WebhookDelivery.__table__.columns)  # type: ignore[attr-defined]


async def _insert_async(
    job: Job, owed: list[WebhookDelivery], key: str | None, digest: str, settings: Settings
) -> bool:
    """Commit the job row with its idempotency key and webhook deliveries; False (nothing
    written) when the key is already live."""
    row = {c.key: getattr(job, c.key) for c in _JOB_COLUMNS}
    if not key and not owed:
        await aiodb.fetch(_INSERT_JOB_Q, row)  # one statement, atomic on its own
        return True
    try:
        async with aiodb.transaction() as conn:  # one round trip: nothing is read before the COMMIT
            await aiodb.execute(conn, _INSERT_JOB_Q, row)
            if key:
                await idempotency.remember_async(
                    conn, job.account_id, key, digest, job.id, settings.idempotency_ttl_seconds
                )
            for delivery in owed:
                await aiodb.execute(
                    conn, _INSERT_DELIVERY, {c.key: getattr(delivery, c.key) for c in _DELIVERY_COLUMNS}
                )
    except Exception as exc:
        if key and idempotency.is_taken(exc):
            return False  # rolled back
        raise
    return True


async def _replay_async(row: IdempotencyKey | None, digest: str, key: str) -> Submission:
    found = await read_async(idempotency.replayed_id(row, digest, key))
    assert found is not None  # the key's row goes with its job (ON DELETE CASCADE)
    return Submission(found[0], replayed=True, sound=found[1])


_SOUNDS = Sound.__table__  # type: ignore[attr-defined]
_READ = aiodb.Query(
    sa_select(_JOBS, _SOUNDS)
    .select_from(_JOBS.outerjoin(_SOUNDS, _SOUNDS.c.id == _JOBS.c.result_sound_id))
    .where(_JOBS.c.id == bindparam("job_id", type_=_JOBS.c.id.type))
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
)


async def read_async(job_id: uuid.UUID) -> tuple[Job, Sound | None] | None:
    """A job and its result's sound, in one statement on the async pool (the API's reads)."""
    row = await aiodb.fetch_one(_READ, {"job_id": job_id})
    if row is None:
        return None
    job = Job.model_validate({c.key: row[f"jobs_{c.name}"] for c in _JOBS.c})
    sound = None
    if row["sounds_id"] is not None:
        sound = Sound.model_validate({c.key: row[f"sounds_{c.name}"] for c in _SOUNDS.c})
    return job, sound


async def _release_async(client: Any, job: Job) -> None:
    try:
        pipe = client.pipeline(transaction=False)
        limits.release_commands(pipe, job.id, job.account_id)
        await pipe.execute()
    except Exception as exc:
        log.warning("limit release deferred to the sweep", job_id=str(job.id), error=str(exc))


def _check_voice(settings: Settings, voice: str) -> None:
    """A voice job's explicit voice must be an installed voice (refused now, not failed at run time)."""
    voices = discover_voices(settings)
    if voice not in voices:
        shown = ", ".join(list(voices)[:5]) + (", ..." if len(voices) > 5 else "")
        raise InvalidField(
            "voice", f"unknown voice {voice!r}; GET /v1/voices lists the installed ones ({shown})", voice
        )


def _webhook_target(request: GenerationCreate, settings: Settings) -> tuple[str | None, list[str]]:
    """The job's webhook URL (checked: it must resolve to addresses webhooks may reach) and event types."""
    if request.webhook_url is None:
        if request.webhook_events is not None:
            raise InvalidField("webhook_events", "needs a webhook_url", request.webhook_events)
        return None, []
    try:
        resolve_checked(request.webhook_url, Allowlist.parse(settings.webhook_allowlist))
    except UnsafeWebhookURL as exc:
        raise InvalidField("webhook_url", str(exc), request.webhook_url) from None
    return request.webhook_url, [EventType(e).value for e in request.webhook_events or DEFAULT_WEBHOOK_EVENTS]


_FAIL_UNSENT = aiodb.Query(  # _fail_unsent_stmt for the async pool
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.status == QUEUED)
    .values(status=JobStatus.failed, error="queue unavailable at submit", finished_at=bindparam("now"))
    .returning(*_JOBS.c)
)


def _fail_unsent_stmt(job_id: uuid.UUID):
    """queued → failed for a job whose task the broker refused (unless it changed meanwhile)."""
    return (
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == QUEUED)
        .values(status=JobStatus.failed, error="queue unavailable at submit", finished_at=utcnow())
        .returning(Job)
        .execution_options(populate_existing=True)
    )


def _fail_unsent(session: Session, job: Job, key: str | None) -> None:
    failed = session.scalars(_fail_unsent_stmt(job.id)).first()
    if key:
        idempotency.forget(session, job.account_id, key)  # a retry with the key must try again
    event = events.record(session, failed, EventType.failed) if failed is not None else None
    session.commit()
    events.publish(event)


async def _fail_unsent_async(redis_client: Any, job: Job, key: str | None, settings: Settings) -> None:
    async with aiodb.transaction() as conn:
        row = await (await aiodb.execute(conn, _FAIL_UNSENT, {"job_id": job.id, "now": utcnow()})).fetchone()
        if key:  # a retry with the key must try again
            await aiodb.execute(conn, idempotency.FORGET, {"account_id": job.account_id, "key": key})
        if row is None:
            return
        event, owed = events.build(Job.model_validate(row), EventType.failed)
        for delivery in owed:
            await aiodb.execute(conn, _INSERT_DELIVERY, {c.key: getattr(delivery, c.key) for c in _DELIVERY_COLUMNS})
    try:  # Redis is likely down: the event is lost to live listeners (they read the row), its place freed by the sweep
        pipe = redis_client.pipeline(transaction=True)
        events.publish_commands(pipe, event, settings.events_ttl_seconds)
        await pipe.execute()
    except Exception as exc:
        log.warning("job event not published", job_id=event.job_id, type=event.type, error=str(exc))
    if event.deliveries:
        await asyncio.to_thread(events.dispatch, event.deliveries)


def cancel(session: Session, job_id: uuid.UUID) -> Job:
    """A queued job: queued → canceled at once (its task, when it comes, finds nothing to claim).
    A running one: ``cancel_requested`` is set, and its worker stops at the next progress step.
    ``JobFinished`` when the job is already terminal. Ownership is the caller's to check."""
    job = session.scalars(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == QUEUED)
        .values(status=JobStatus.canceled, cancel_requested=True, finished_at=utcnow(), error="canceled by request")
        .returning(Job)
        .execution_options(populate_existing=True)
    ).first()
    event = None
    if job is not None:
        event = events.record(session, job, EventType.canceled)
    else:
        job = session.scalars(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == RUNNING)
            .values(cancel_requested=True)
            .returning(Job)
            .execution_options(populate_existing=True)
        ).first()
        if job is None:
            session.rollback()
            current = session.get(Job, job_id)
            raise JobFinished(job_id, current.status if current is not None else "deleted")
    session.commit()
    events.publish(event)
    return job


# --- the worker's half -------------------------------------------------------------------------


def claim(job_id: uuid.UUID, worker: str, lease_seconds: int) -> Job | None:
    """queued → running under a lease for ``worker`` (or running under an expired lease: its worker
    died). None when the job is in any other state, or another delivery holds a live lease."""
    now = utcnow()
    with session_scope() as s:
        job = s.scalars(
            update(Job)
            .where(col(Job.id) == job_id)
            .where((col(Job.status) == QUEUED) | ((col(Job.status) == RUNNING) & (col(Job.lease_expires_at) < now)))
            .values(_claimed(worker, lease_seconds, now))
            .returning(Job)
        ).first()
        event = events.record(s, job, EventType.started) if job is not None else None
    events.publish(event)
    return job


def _claimed(worker: str, lease_seconds: int, now: datetime) -> dict[str, Any]:
    """The columns a claim sets: running under a lease for ``worker``, one more delivery."""
    return {
        "status": RUNNING,
        "worker": worker,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "started_at": func.coalesce(col(Job.started_at), now),
        "deliveries": col(Job.deliveries) + 1,
    }


def claim_many(job_ids: list[uuid.UUID], worker: str, lease_seconds: int) -> list[Job]:
    """queued → running for each of ``job_ids`` still queued, under one lease for ``worker`` (the
    batcher's company for a batch). Rows another worker is claiming are skipped (SKIP LOCKED);
    returns the jobs this call took, in priority order."""
    if not job_ids:
        return []
    now = utcnow()
    free = (
        select(col(Job.id)).where(col(Job.id).in_(job_ids), col(Job.status) == QUEUED).with_for_update(skip_locked=True)
    )
    with session_scope() as s:
        taken = list(
            s.scalars(
                update(Job)
                .where(col(Job.id).in_(free.scalar_subquery()), col(Job.status) == QUEUED)
                .values(_claimed(worker, lease_seconds, now))
                .returning(Job)
            ).all()
        )
        started = [events.record(s, job, EventType.started) for job in taken]
    events.publish(*started)
    return sorted(taken, key=lambda j: (-j.queue_priority, j.created_at))


@dataclass(frozen=True)
class Waiting:
    """A queued job as the batcher sees it (no state change)."""

    id: uuid.UUID
    model: str
    params: dict[str, Any]
    priority: int  # queue priority (aging included)
    created_at: datetime


def waiting(models: list[str], *, prefer: str | None = None, limit: int = 64) -> list[Waiting]:
    """Queued jobs of ``models`` in the order the batcher serves them: highest queue priority first,
    then ``prefer`` (the loaded model: affinity at equal priority), then oldest."""
    if not models:
        return []
    order: list[Any] = [col(Job.queue_priority).desc()]
    if prefer is not None:
        order.append((col(Job.model) == prefer).desc())
    with session_scope() as s:
        rows = s.scalars(
            select(Job)
            .where(col(Job.status) == QUEUED, col(Job.model).in_(models))
            .order_by(*order, col(Job.created_at))
            .limit(limit)
        ).all()
        return [Waiting(j.id, j.model, j.params, j.queue_priority, j.created_at) for j in rows]


def get(job_id: uuid.UUID) -> Job | None:
    with session_scope() as s:
        return s.get(Job, job_id)


def heartbeat(job_id: uuid.UUID, worker: str, lease_seconds: int, progress: float | None = None) -> bool | None:
    """Renew the lease (and store progress) while ``worker`` holds the running job. Returns
    cancel_requested, or None when the lease was lost (the job is no longer this worker's)."""
    values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = func.greatest(col(Job.progress), progress)
    with session_scope() as s:
        row = s.exec(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == RUNNING, col(Job.worker) == worker)
            .values(**values)
            .returning(col(Job.cancel_requested))
        ).first()
    return None if row is None else bool(row[0])


def record_attempt(job_id: uuid.UUID, worker: str, attempt: dict[str, Any]) -> None:
    """Append one generation attempt to the job's attempt log (while ``worker`` holds it)."""
    with session_scope() as s:
        job = s.scalars(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == RUNNING, col(Job.worker) == worker)
            .values(attempts=col(Job.attempts) + 1, attempt_log=col(Job.attempt_log).op("||")([attempt]))
            .returning(Job)
        ).first()
        event = events.record(s, job, EventType.attempt, extra={"attempt": attempt}) if job is not None else None
    events.publish(event)


def succeed(job_id: uuid.UUID, worker: str, sound: Sound, kept_from_end: int | None = None) -> bool:
    """running → succeeded, only while ``worker`` holds the job, with its sound inserted in the same
    transaction. False (and no sound) when the job is not this worker's any more.
    ``kept_from_end``: which attempt became the result, counted back from the last one logged
    (0: the last); that attempt_log entry gets ``"kept": true``, the others ``false``."""
    with session_scope() as s:
        job = s.scalars(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == RUNNING, col(Job.worker) == worker)
            .values(
                status=JobStatus.succeeded,
                progress=1.0,
                finished_at=utcnow(),
                result_sound_id=sound.id,
                lease_expires_at=None,
                error=None,
            )
            .returning(Job)
        ).first()
        if job is None:
            return False
        s.add(sound)
        log_entries = list(job.attempt_log or [])
        if kept_from_end is not None and 0 <= kept_from_end < len(log_entries):
            kept = len(log_entries) - 1 - kept_from_end
            job.attempt_log = [
                dict(entry, kept=i == kept) if isinstance(entry, dict) else entry for i, entry in enumerate(log_entries)
            ]
        s.flush()
        event = events.record(s, job, EventType.succeeded, sound=sound)
    events.publish(event)
    return True


def finish(job_id: uuid.UUID, worker: str | None, status: JobStatus, error: str) -> bool:
    """queued or running → failed or canceled (only while ``worker`` holds it, when one is given).
    False when the job was in neither state (or not this worker's)."""
    with session_scope() as s:
        q = update(Job).where(col(Job.id) == job_id, col(Job.status).in_([RUNNING, QUEUED]))
        if worker is not None:
            q = q.where(col(Job.worker) == worker)
        job = s.scalars(
            q.values(status=status, error=error[:2000], finished_at=utcnow(), lease_expires_at=None).returning(Job)
        ).first()
        event = events.record(s, job, events.STATUS_EVENTS[status]) if job is not None else None
    events.publish(event)
    return job is not None


def requeue_expired(limit: int = 50) -> list[Job]:
    """running → queued for jobs whose worker stopped renewing its lease (it died); the caller
    sends each again. Rows another sweeper is requeueing are skipped (SKIP LOCKED)."""
    now = utcnow()
    due = (
        select(col(Job.id))
        .where(col(Job.status) == RUNNING, col(Job.lease_expires_at) < now)
        .order_by(col(Job.lease_expires_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with session_scope() as s:
        jobs = list(
            s.scalars(
                update(Job)
                .where(
                    col(Job.id).in_(due.scalar_subquery()), col(Job.status) == RUNNING, col(Job.lease_expires_at) < now
                )
                .values(status=QUEUED, worker=None, lease_expires_at=None)
                .returning(Job)
            ).all()
        )
        requeued = [events.record(s, job, EventType.queued) for job in jobs]
    events.publish(*requeued)
    return jobs


def promote_aged(aging_seconds: float, limit: int = 500) -> list[tuple[uuid.UUID, str, int]]:
    """Aging: raise each waiting job's queue priority by one per ``aging_seconds`` waited (up to 9).
    Returns (id, model, new priority) of the jobs raised; the caller sends them again at that
    priority (the older, lower message is skipped when it comes: the job is no longer queued).
    Not a state change: no event."""
    waited = func.extract("epoch", func.now() - col(Job.created_at))
    effective = cast(func.least(9, col(Job.priority) + func.floor(waited / aging_seconds)), Integer)
    with session_scope() as s:
        due = select(col(Job.id)).where(col(Job.status) == QUEUED, effective > col(Job.queue_priority)).limit(limit)
        rows = s.exec(
            update(Job)
            .where(col(Job.id).in_(due), col(Job.status) == QUEUED, effective > col(Job.queue_priority))
            .values(queue_priority=effective)
            .returning(col(Job.id), col(Job.model), col(Job.queue_priority))
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


# --- reads ---------------------------------------------------------------------------------------


def page(
    session: Session,
    *,
    account_id: uuid.UUID | None,
    status: JobStatus | None = None,
    model: ModelId | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 20,
) -> tuple[list[Job], dict[uuid.UUID, Sound], bool]:
    """Jobs newest first (``account_id`` None: everyone's), older than the ``before`` cursor
    (created_at, id). Returns (jobs, their result sounds by id, whether more follow)."""
    q = select(Job)
    if account_id is not None:
        q = q.where(col(Job.account_id) == account_id)
    if status:
        q = q.where(col(Job.status) == status)
    if model:
        q = q.where(col(Job.model) == model)
    if before:
        created, ident = before
        q = q.where(or_(col(Job.created_at) < created, and_(col(Job.created_at) == created, col(Job.id) < ident)))
    jobs = list(session.exec(q.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1)).all())
    items, more = jobs[:limit], len(jobs) > limit
    sound_ids = [j.result_sound_id for j in items if j.result_sound_id]
    sounds = {s.id: s for s in session.exec(select(Sound).where(col(Sound.id).in_(sound_ids)))} if sound_ids else {}
    return items, sounds, more


def queue_depth(session: Session) -> list[tuple[str, int, int]]:
    """Waiting jobs per (model, priority): (model, priority, count), highest priority first per model."""
    rows = session.exec(
        select(col(Job.model), col(Job.priority), func.count())
        .where(col(Job.status) == QUEUED)
        .group_by(col(Job.model), col(Job.priority))
        .order_by(col(Job.model), col(Job.priority).desc())
    )
    return [(m, p, n) for m, p, n in rows]


def active_by_model(session: Session) -> list[tuple[str, JobStatus, int, datetime]]:
    """Queued and running jobs per (model, status): (model, status, count, oldest created_at)."""
    rows = session.exec(
        select(col(Job.model), col(Job.status), func.count(), func.min(col(Job.created_at)))
        .where(col(Job.status).in_([QUEUED, RUNNING]))
        .group_by(col(Job.model), col(Job.status))
    )
    return [(m, st, n, first) for m, st, n, first in rows]
