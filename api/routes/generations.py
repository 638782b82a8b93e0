"""POST /v1/generations: validate, record the job, enqueue it."""

from __future__ import annotations

import secrets

import structlog
from fastapi import APIRouter, Request, Response

from api.deps import CatalogDep, SessionDep
from api.presenters import job_out
from api.problems import ProblemException, field_error
from shared.catalog import ModelSpec
from shared.celery_app import enqueue_job
from shared.models import Job, JobStatus, utcnow
from shared.schemas import DEFAULT_DURATION, PROMPT_MAX, GenerationCreate, JobOut

router = APIRouter(tags=["generations"])
log = structlog.get_logger()


def _job_params(body: GenerationCreate, spec: ModelSpec) -> dict:
    """Check the per-model rules pydantic cannot know, and fix the parameters the worker will use."""
    if spec.uses_duration:
        if len(body.prompt) > PROMPT_MAX:
            raise field_error("prompt", f"must be at most {PROMPT_MAX} characters for model '{spec.id}'",
                              len(body.prompt))
        if body.voice is not None:
            raise field_error("voice", "only the 'voice' model takes a voice", body.voice)
        duration = min(DEFAULT_DURATION, spec.max_duration) if body.duration is None else body.duration
        if not spec.min_duration <= duration <= spec.max_duration:
            raise field_error("duration", f"must be between {spec.min_duration:g} and {spec.max_duration:g} "
                                          f"seconds for model '{spec.id}'", body.duration)
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


@router.post("/v1/generations", status_code=202, response_model=JobOut,
             responses={202: {"headers": {"Location": {"description": "URL of the job"}}}})
def create_generation(body: GenerationCreate, request: Request, response: Response,
                      session: SessionDep, catalog: CatalogDep) -> JobOut:
    """Queue a generation. Poll the job at the `Location` URL until its status is terminal."""
    spec = catalog[body.model]
    job = Job(model=spec.id, params=_job_params(body, spec), priority=body.priority)
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
