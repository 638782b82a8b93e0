"""POST /v1/generations: validate, record the job, enqueue it; optionally wait for the result
(``Prefer: wait=N``) and make retries safe (``Idempotency-Key``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError

from api import idempotency, live
from api.auth import CurrentPrincipal, rate_bucket
from api.deps import AsyncRedisDep, CatalogDep, SettingsDep
from api.resilience import release_admission
from shared.domain import jobs, jobview
from shared.domain.models import TERMINAL_STATUSES
from shared.domain.schemas import GenerationCreate, JobOut

router = APIRouter(tags=["generations"])
MAX_WAIT = 60  # seconds Prefer: wait may ask for


def prefer_wait(header: str | None) -> int | None:
    """The ``wait`` preference of a Prefer header (RFC 7240), in seconds; other preferences are ignored."""
    for preference in (header or "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not (value.isascii() and value.isdigit()) or len(value) > 3 or int(value) > MAX_WAIT:
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("header", "Prefer"),
                        "input": header,
                        "msg": f"wait must be whole seconds from 0 to {MAX_WAIT}",
                    }
                ]
            )
        return int(value)
    return None


@router.post(
    "/v1/generations",
    status_code=202,
    response_model=JobOut,
    responses={
        201: {"description": "`Prefer: wait=N` and the job finished in time: the finished job"},
        202: {"headers": {"Location": {"description": "URL of the job"}}},
        409: {"description": "the Idempotency-Key was used with a different body"},
        429: {"description": "a tier limit or the rate limit was reached"},
        503: {"description": "the queue is full or unavailable"},
    },
)
async def create_generation(
    body: GenerationCreate,
    request: Request,
    redis: AsyncRedisDep,
    catalog: CatalogDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    prefer: Annotated[
        str | None,
        Header(
            description=f"`wait=N` (0-{MAX_WAIT}): hold the request until the job finishes (201 with the "
            "finished job) or N seconds pass (202 as usual)."
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Makes retries safe: the same key with the same body within 24 h returns the same job "
            "(`Idempotent-Replayed: true`); with a different body, 409.",
        ),
    ] = None,
) -> Response:
    """Queue a generation. Poll the job at the `Location` URL until its status is terminal, follow
    `GET /v1/jobs/{id}/events`, or give a `webhook_url`. The priority is clamped into the caller's tier range."""
    wait = prefer_wait(prefer)
    submission = await jobs.submit_async(
        redis_client=redis,
        account=principal.account,
        request=body,
        catalog=catalog,
        settings=settings,
        idempotency_key=idempotency.check_key(idempotency_key),
        bucket=rate_bucket(principal, "generate", settings),
    )
    job, sound, status = submission.job, submission.sound, 202
    base = str(request.base_url)
    headers = {"Location": f"{base}v1/jobs/{job.id}"}
    if submission.rate is not None:
        request.state.rate_limit_headers = submission.rate.headers()
    if submission.replayed:
        headers["Idempotent-Replayed"] = "true"
    if wait is not None:
        if wait and job.status not in TERMINAL_STATUSES:
            release_admission(request)  # waiting holds no database connection: free the slot

            async def finished() -> bool:
                found = await jobs.read_async(job.id)
                return found is not None and found[0].status in TERMINAL_STATUSES

            await live.wait_for_terminal(settings.redis_url, job.id, wait, finished)
            job, sound = await jobs.read_async(job.id) or (job, sound)
        headers["Preference-Applied"] = f"wait={wait}"
        status = 201 if job.status in TERMINAL_STATUSES else 202
    body_json = jobview.job_out(job, sound, base_url=base).model_dump_json()
    return Response(body_json, status_code=status, headers=headers, media_type="application/json")
