"""Jobs: read one, list with filters and cursor pagination, cancel."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import Session

from api.auth import CurrentPrincipal
from api.deps import SessionDep
from api.owned import OwnedJob, owned_job_async
from api.presenters import job_out
from api.problems import ProblemException
from shared.domain import jobs, jobview
from shared.domain.catalog import ModelId
from shared.domain.models import Job, JobStatus, Sound
from shared.domain.schemas import JobList, JobOut

router = APIRouter(tags=["jobs"])


def present(request: Request, session: Session, job: Job) -> JobOut:
    sound = session.get(Sound, job.result_sound_id) if job.result_sound_id else None
    return job_out(request, job, sound)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, name="get_job")
async def get_job(job_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> Response:
    """The job as it stands now (one statement on the async pool: the route clients poll)."""
    job, sound = await owned_job_async(job_id, principal)
    body = jobview.job_out(job, sound, base_url=str(request.base_url)).model_dump_json()
    return Response(body, media_type="application/json")


def _encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemException(
            422,
            "cursor: not a cursor returned by this API",
            errors=[{"field": "cursor", "location": "query", "message": "invalid cursor"}],
        ) from None


@router.get("/v1/jobs", response_model=JobList)
def list_jobs(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[JobStatus | None, Query()] = None,
    model: Annotated[ModelId | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobList:
    """The caller's jobs (all jobs for admins), newest first. Follow `next_cursor` for older ones."""
    items, sounds, more = jobs.page(
        session,
        account_id=None if principal.is_admin else principal.account.id,
        status=status,
        model=model,
        before=_decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    return JobList(
        items=[job_out(request, j, sounds.get(j.result_sound_id) if j.result_sound_id else None) for j in items],
        next_cursor=_encode_cursor(items[-1]) if more else None,
    )


@router.post(
    "/v1/jobs/{job_id}/cancel", response_model=JobOut, responses={409: {"description": "the job has already finished"}}
)
def cancel_job(job: OwnedJob, request: Request, session: SessionDep) -> JobOut:
    """A queued job is canceled at once and never runs; a running one stops at its next progress step."""
    return present(request, session, jobs.cancel(session, job.id))
