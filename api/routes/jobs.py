"""Jobs: read one, list with filters and cursor pagination, cancel."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import and_, or_, update
from sqlmodel import col, select

from api.auth import CurrentPrincipal, Principal
from api.deps import SessionDep
from api.presenters import job_out
from api.problems import ProblemException
from shared.domain import events
from shared.domain.models import Job, JobStatus, Sound, utcnow
from shared.domain.schemas import JobList, JobOut

router = APIRouter(tags=["jobs"])

StatusFilter = Literal["queued", "running", "succeeded", "failed", "canceled"]
ModelFilter = Literal["music", "audio", "magnet", "voice"]


def load_job(session, job_id: uuid.UUID, principal: Principal) -> Job:
    """The job, when the caller may see it; another account's job is as good as absent (404)."""
    job = session.get(Job, job_id)
    if job is None or not principal.owns(job.account_id):
        raise ProblemException(404, f"no job {job_id}")
    return job


def present(request: Request, session, job: Job) -> JobOut:
    sound = session.get(Sound, job.result_sound_id) if job.result_sound_id else None
    return job_out(request, job, sound)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, name="get_job")
def get_job(job_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentPrincipal) -> JobOut:
    return present(request, session, load_job(session, job_id, principal))


def _encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemException(422, "cursor: not a cursor returned by this API",
                               errors=[{"field": "cursor", "location": "query", "message": "invalid cursor"}]) from None


@router.get("/v1/jobs", response_model=JobList)
def list_jobs(request: Request, session: SessionDep, principal: CurrentPrincipal,
              status: Annotated[StatusFilter | None, Query()] = None,
              model: Annotated[ModelFilter | None, Query()] = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20,
              cursor: Annotated[str | None, Query(max_length=200)] = None) -> JobList:
    """The caller's jobs (all jobs for admins), newest first. Follow `next_cursor` for older ones."""
    q = select(Job)
    if not principal.is_admin:
        q = q.where(Job.account_id == principal.account.id)
    if status:
        q = q.where(Job.status == status)
    if model:
        q = q.where(Job.model == model)
    if cursor:
        created, ident = _decode_cursor(cursor)
        q = q.where(or_(col(Job.created_at) < created, and_(col(Job.created_at) == created, col(Job.id) < ident)))
    jobs = session.exec(q.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1)).all()
    page, more = jobs[:limit], len(jobs) > limit
    sound_ids = [j.result_sound_id for j in page if j.result_sound_id]
    sounds = {s.id: s for s in session.exec(select(Sound).where(col(Sound.id).in_(sound_ids)))} if sound_ids else {}
    return JobList(items=[job_out(request, j, sounds.get(j.result_sound_id)) for j in page],
                   next_cursor=_encode_cursor(page[-1]) if more else None)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut,
             responses={409: {"description": "the job has already finished"}})
def cancel_job(job_id: uuid.UUID, request: Request, session: SessionDep, principal: CurrentPrincipal) -> JobOut:
    """A queued job is canceled at once and never runs; a running one stops at its next progress step."""
    load_job(session, job_id, principal)
    canceled = session.exec(
        update(Job).where(col(Job.id) == job_id, col(Job.status) == JobStatus.queued.value)
        .values(status=JobStatus.canceled.value, cancel_requested=True, finished_at=utcnow(),
                error="canceled by request")
        .returning(col(Job.id))
    ).first()
    event = None
    if canceled is not None:  # its job.canceled event (and webhook) in the same transaction
        job = load_job(session, job_id, principal)
        session.refresh(job)
        event = events.record(session, job, "job.canceled")
    else:
        flagged = session.exec(
            update(Job).where(col(Job.id) == job_id, col(Job.status) == JobStatus.running.value)
            .values(cancel_requested=True).returning(col(Job.id))
        ).first()
        if flagged is None:
            session.rollback()
            job = load_job(session, job_id, principal)
            raise ProblemException(409, f"job {job_id} has already finished ({job.status})")
    session.commit()
    events.publish(event)
    job = load_job(session, job_id, principal)
    session.refresh(job)
    return present(request, session, job)
