"""Webhooks: the account's signing secret (read, rotate), a job's deliveries with every attempt,
and URLs disabled by a 410 (list, enable again)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlmodel import col, select

from api.auth import CurrentPrincipal
from api.deps import SessionDep, SettingsDep
from api.owned import owned_job
from api.problems import ProblemException
from shared.domain.models import WebhookAttempt, WebhookDelivery, WebhookDisabledUrl, WebhookSecret
from shared.domain.schemas import (
    WEBHOOK_URL_MAX,
    DisabledUrlOut,
    WebhookAttemptOut,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookSecretOut,
)
from shared.domain.webhooks import account_secret, rotate_secret

router = APIRouter(tags=["webhooks"])


def _secret_out(row: WebhookSecret) -> WebhookSecretOut:
    return WebhookSecretOut(
        secret=row.secret,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
        previous_secret_expires_at=row.previous_expires_at if row.previous_secret else None,
    )


@router.get("/v1/webhooks/secret", response_model=WebhookSecretOut)
def get_webhook_secret(session: SessionDep, principal: CurrentPrincipal) -> WebhookSecretOut:
    """The account's webhook signing secret (created on first use)."""
    row = account_secret(session, principal.account.id)
    session.commit()
    return _secret_out(row)


@router.post("/v1/webhooks/secret/rotate", response_model=WebhookSecretOut)
def rotate_webhook_secret(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep) -> WebhookSecretOut:
    """A new secret. The previous one keeps signing (`webhook-signature` then carries both
    signatures) for SOUNDBOX_WEBHOOK_SECRET_GRACE_SECONDS, time to deploy the new one."""
    row = rotate_secret(session, principal.account.id, settings.webhook_secret_grace_seconds)
    session.commit()
    return _secret_out(row)


@router.get("/v1/jobs/{job_id}/webhooks", response_model=WebhookDeliveryList)
def job_webhooks(job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> WebhookDeliveryList:
    """Every webhook this job owed, oldest first, each with all its attempts."""
    owned_job(session, job_id, principal)
    deliveries = session.exec(
        select(WebhookDelivery)
        .where(col(WebhookDelivery.job_id) == job_id)
        .order_by(col(WebhookDelivery.created_at), col(WebhookDelivery.id))
    ).all()
    attempts: dict[uuid.UUID, list[WebhookAttemptOut]] = {d.id: [] for d in deliveries}
    if deliveries:
        for a in session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(list(attempts)))
            .order_by(col(WebhookAttempt.attempt))
        ):
            attempts[a.delivery_id].append(
                WebhookAttemptOut(
                    attempt=a.attempt,
                    attempted_at=a.attempted_at,
                    status_code=a.status_code,
                    latency_ms=a.latency_ms,
                    error=a.error,
                    address=a.address,
                )
            )
    return WebhookDeliveryList(
        items=[
            WebhookDeliveryOut(
                id=d.id,
                webhook_id=d.webhook_id,
                event_type=d.event_type,
                url=d.url,
                state=d.state,
                next_attempt_at=d.next_attempt_at,
                created_at=d.created_at,
                finished_at=d.finished_at,
                last_status_code=d.last_status_code,
                last_error=d.last_error,
                attempts=attempts[d.id],
            )
            for d in deliveries
        ]
    )


@router.get("/v1/webhooks/disabled", response_model=list[DisabledUrlOut])
def disabled_urls(session: SessionDep, principal: CurrentPrincipal) -> list[DisabledUrlOut]:
    """URLs that answered 410 Gone: the account's events to them are recorded as skipped."""
    rows = session.exec(
        select(WebhookDisabledUrl)
        .where(col(WebhookDisabledUrl.account_id) == principal.account.id)
        .order_by(col(WebhookDisabledUrl.disabled_at))
    ).all()
    return [DisabledUrlOut(url=r.url, disabled_at=r.disabled_at) for r in rows]


@router.delete(
    "/v1/webhooks/disabled",
    status_code=204,
    response_class=Response,
    responses={404: {"description": "the URL is not disabled"}},
)
def enable_url(
    session: SessionDep,
    principal: CurrentPrincipal,
    url: Annotated[str, Query(min_length=1, max_length=WEBHOOK_URL_MAX)],
) -> Response:
    """Send to a disabled URL again (events from now on)."""
    row = session.get(WebhookDisabledUrl, (principal.account.id, url))
    if row is None:
        raise ProblemException(404, f"{url} is not disabled")
    session.delete(row)
    session.commit()
    return Response(status_code=204)
