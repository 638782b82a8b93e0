"""POST /v1/generations: validate, record the job, enqueue it; optionally wait for the result
(``Prefer: wait=N``) and make retries safe (``Idempotency-Key``)."""

from __future__ import annotations

import math
import secrets
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api import idempotency, live
from api.auth import CurrentPrincipal, Principal, tier_of
from api.deps import CatalogDep, SessionDep, SettingsDep
from api.presenters import job_out
from api.problems import ProblemException, field_error
from api.resilience import release_admission
from api.speech import check_job_voice
from shared.domain import events
from shared.domain.catalog import ModelSpec
from shared.infra.celery_app import enqueue_job
from shared.domain.models import TERMINAL_STATUSES, Account, Job, JobStatus, utcnow
from shared.domain.schemas import DEFAULT_DURATION, DEFAULT_WEBHOOK_EVENTS, PROMPT_MAX, GenerationCreate, JobOut
from shared.settings import Settings
from shared.domain.tiers import TierLimits
from shared.domain.webhooks import Allowlist, UnsafeWebhookURL, resolve_checked

router = APIRouter(tags=["generations"])
log = structlog.get_logger()


def _job_params(body: GenerationCreate, spec: ModelSpec, tier_name: str, tier: TierLimits) -> dict:
    """Check the per-model and per-tier rules pydantic cannot know, and fix the parameters the worker will use."""
    if spec.uses_duration:
        if len(body.prompt) > PROMPT_MAX:
            raise field_error("prompt", f"must be at most {PROMPT_MAX} characters for model '{spec.id}'",
                              len(body.prompt))
        if body.voice is not None:
            raise field_error("voice", "only the 'voice' model takes a voice", body.voice)
        longest = min(spec.max_duration, tier.max_duration)
        duration = min(DEFAULT_DURATION, longest) if body.duration is None else body.duration
        if not spec.min_duration <= duration <= longest:
            whose = f"model '{spec.id}'" if longest == spec.max_duration else f"the {tier_name} tier"
            raise field_error("duration", f"must be between {spec.min_duration:g} and {longest:g} "
                                          f"seconds for {whose}", body.duration)
    else:
        duration = None
        if body.loopable:
            raise field_error("loopable", "speech cannot be made loopable", body.loopable)
    # The seed is fixed at submit time so a job's attempts are reproducible.
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    params = {"prompt": body.prompt, "duration": duration, "loopable": body.loopable, "seed": seed}
    if not spec.uses_duration:
        params["voice"] = body.voice or spec.checkpoint
    return params


def _check_limits(session: Session, principal: Principal, tier: TierLimits, settings: Settings) -> None:
    """Pending-job cap, hourly quota and the global queue cap. The account row is locked, so
    concurrent submissions from one account are counted one after another."""
    account_id = principal.account.id
    session.exec(select(Account).where(col(Account.id) == account_id).with_for_update()).first()
    name = principal.account.tier
    pending = session.exec(select(func.count()).select_from(Job).where(
        col(Job.account_id) == account_id,
        col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]))).one()
    if pending >= tier.max_pending:
        raise ProblemException(429, f"pending-jobs limit reached: {pending} of {tier.max_pending} jobs queued or "
                                    f"running for the {name} tier; wait for one to finish",
                               title="Too Many Requests", headers={"Retry-After": "10"}, limit="max_pending")
    since = utcnow() - timedelta(hours=1)
    count, oldest = session.exec(select(func.count(), func.min(Job.created_at)).where(
        col(Job.account_id) == account_id, col(Job.created_at) > since)).one()
    if count >= tier.jobs_per_hour:
        wait = max(1, math.ceil((oldest + timedelta(hours=1) - utcnow()).total_seconds()))
        raise ProblemException(429, f"hourly quota reached: {tier.jobs_per_hour} jobs per hour for the {name} tier",
                               title="Too Many Requests", headers={"Retry-After": str(wait)}, limit="jobs_per_hour")
    queued = session.exec(select(func.count()).select_from(Job).where(col(Job.status) == JobStatus.queued.value)).one()
    if queued >= settings.max_queued_jobs:
        raise ProblemException(503, f"the service is at capacity ({queued} jobs waiting); try again shortly",
                               headers={"Retry-After": "30"}, limit="max_queued_jobs")


MAX_WAIT = 60  # seconds Prefer: wait may ask for


def prefer_wait(header: str | None) -> int | None:
    """The ``wait`` preference of a Prefer header (RFC 7240), in seconds; other preferences are ignored."""
    for preference in (header or "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not (value.isascii() and value.isdigit()) or len(value) > 3 or int(value) > MAX_WAIT:
            raise RequestValidationError([{"type": "value_error", "loc": ("header", "Prefer"), "input": header,
                                           "msg": f"wait must be whole seconds from 0 to {MAX_WAIT}"}])
        return int(value)
    return None


def _webhook(body: GenerationCreate, settings: Settings) -> tuple[str | None, list[str]]:
    """The job's webhook URL (checked: it must resolve to addresses webhooks may reach) and event types."""
    if body.webhook_url is None:
        if body.webhook_events is not None:
            raise field_error("webhook_events", "needs a webhook_url", body.webhook_events)
        return None, []
    try:
        resolve_checked(body.webhook_url, Allowlist.parse(settings.webhook_allowlist))
    except UnsafeWebhookURL as exc:
        raise field_error("webhook_url", str(exc), body.webhook_url) from None
    return body.webhook_url, list(body.webhook_events or DEFAULT_WEBHOOK_EVENTS)


def _submit(body: GenerationCreate, session: Session, catalog: dict[str, ModelSpec], principal: Principal,
            settings: Settings, key: str | None) -> tuple[Job, bool]:
    """Validate, record and enqueue the job; or find the job an earlier request with this
    Idempotency-Key made. Returns (job, replayed). Invalid requests leave no trace of their key."""
    spec = catalog[body.model]
    tier = tier_of(principal, settings)
    params = _job_params(body, spec, principal.account.tier, tier)
    check_job_voice(settings, body.voice if not spec.uses_duration else None)
    webhook_url, webhook_events = _webhook(body, settings)
    account_id = principal.account.id
    digest = idempotency.request_hash(body) if key else ""
    if key and (row := idempotency.lookup(session, account_id, key)) is not None:
        return idempotency.replay(session, row, digest, key), True
    _check_limits(session, principal, tier, settings)
    priority = tier.clamp_priority(body.priority)
    job = Job(account_id=account_id, model=spec.id, params=params, priority=priority, queue_priority=priority,
              webhook_url=webhook_url, webhook_events=webhook_events)
    session.add(job)
    session.flush()
    if key and not idempotency.remember(session, account_id, key, digest, job.id, settings.idempotency_ttl_seconds):
        session.rollback()  # a concurrent request with this key made its job first: answer with that one
        return idempotency.replay(session, idempotency.lookup(session, account_id, key), digest, key), True
    queued = events.record(session, job, "job.queued")
    session.commit()
    events.publish(queued)  # before the task is sent, so job.queued is always the first event
    try:
        enqueue_job(str(job.id), spec.queue, job.priority)
    except Exception as exc:  # broker down: nothing was accepted, say so and keep the row honest
        log.error("enqueue failed", job_id=str(job.id), error=str(exc))
        job.status, job.error, job.finished_at = JobStatus.failed.value, "queue unavailable at submit", utcnow()
        session.add(job)
        if key:
            idempotency.forget(session, account_id, key)  # a retry with the key must try again
        failed = events.record(session, job, "job.failed")
        session.commit()
        events.publish(failed)
        raise ProblemException(503, "the job queue is unavailable; try again shortly",
                               headers={"Retry-After": "5"}) from exc
    log.info("job queued", job_id=str(job.id), model=job.model, priority=job.priority)
    return job, False


@router.post("/v1/generations", status_code=202, response_model=JobOut,
             responses={201: {"description": "`Prefer: wait=N` and the job finished in time: the finished job"},
                        202: {"headers": {"Location": {"description": "URL of the job"}}},
                        409: {"description": "the Idempotency-Key was used with a different body"},
                        429: {"description": "a tier limit or the rate limit was reached"},
                        503: {"description": "the queue is full or unavailable"}})
async def create_generation(
        body: GenerationCreate, request: Request, response: Response, session: SessionDep, catalog: CatalogDep,
        principal: CurrentPrincipal, settings: SettingsDep,
        prefer: Annotated[str | None, Header(
            description=f"`wait=N` (0-{MAX_WAIT}): hold the request until the job finishes (201 with the "
                        "finished job) or N seconds pass (202 as usual).")] = None,
        idempotency_key: Annotated[str | None, Header(
            alias=idempotency.HEADER,
            description="Makes retries safe: the same key with the same body within 24 h returns the same job "
                        "(`Idempotent-Replayed: true`); with a different body, 409.")] = None) -> JobOut:
    """Queue a generation. Poll the job at the `Location` URL until its status is terminal, follow
    `GET /v1/jobs/{id}/events`, or give a `webhook_url`. The priority is clamped into the caller's tier range."""
    wait = prefer_wait(prefer)
    key = idempotency.check_key(idempotency_key)
    job, replayed = await run_in_threadpool(_submit, body, session, catalog, principal, settings, key)
    await run_in_threadpool(session.close)  # hold no database connection while waiting
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    sound = None
    if wait is not None or replayed:
        if wait and job.status not in TERMINAL_STATUSES:
            release_admission(request)  # waiting holds no database connection: free the slot

            async def finished() -> bool:
                row = await run_in_threadpool(live.job_row, job.id)
                return row is not None and row[0].status in TERMINAL_STATUSES

            await live.wait_for_terminal(settings.redis_url, job.id, wait, finished)
        row = await run_in_threadpool(live.job_row, job.id)
        if row is not None:
            job, sound = row
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
        if job.status in TERMINAL_STATUSES:
            response.status_code = 201
    return job_out(request, job, sound)
