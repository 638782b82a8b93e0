"""POST /v1/generations: validate, record the job, enqueue it."""

from __future__ import annotations

import math
import secrets
from datetime import timedelta

import structlog
from fastapi import APIRouter, Request, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.auth import CurrentPrincipal, Principal, tier_of
from api.deps import CatalogDep, SessionDep, SettingsDep
from api.presenters import job_out
from api.problems import ProblemException, field_error
from shared.catalog import ModelSpec
from shared.celery_app import enqueue_job
from shared.models import Account, Job, JobStatus, utcnow
from shared.schemas import DEFAULT_DURATION, PROMPT_MAX, GenerationCreate, JobOut
from shared.settings import Settings
from shared.tiers import TierLimits

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


@router.post("/v1/generations", status_code=202, response_model=JobOut,
             responses={202: {"headers": {"Location": {"description": "URL of the job"}}},
                        429: {"description": "a tier limit or the rate limit was reached"},
                        503: {"description": "the queue is full or unavailable"}})
def create_generation(body: GenerationCreate, request: Request, response: Response, session: SessionDep,
                      catalog: CatalogDep, principal: CurrentPrincipal, settings: SettingsDep) -> JobOut:
    """Queue a generation. Poll the job at the `Location` URL until its status is terminal.
    The priority is clamped into the caller's tier range."""
    spec = catalog[body.model]
    tier = tier_of(principal, settings)
    params = _job_params(body, spec, principal.account.tier, tier)
    _check_limits(session, principal, tier, settings)
    priority = tier.clamp_priority(body.priority)
    job = Job(account_id=principal.account.id, model=spec.id, params=params, priority=priority,
              queue_priority=priority)
    session.add(job)
    session.commit()
    try:
        enqueue_job(str(job.id), spec.queue, job.priority)
    except Exception as exc:  # broker down: nothing was accepted, say so and keep the row honest
        log.error("enqueue failed", job_id=str(job.id), error=str(exc))
        job.status, job.error, job.finished_at = JobStatus.failed.value, "queue unavailable at submit", utcnow()
        session.add(job)
        session.commit()
        raise ProblemException(503, "the job queue is unavailable; try again shortly",
                               headers={"Retry-After": "5"}) from exc
    log.info("job queued", job_id=str(job.id), model=job.model, priority=job.priority)
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
    return job_out(request, job, None)
