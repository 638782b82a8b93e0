"""What an account may submit right now: its tier's pending-jobs cap and hourly quota, and the
service's cap on waiting jobs. Kept apart from the job states so the counting can move (to Redis,
say) without touching them."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from shared.domain.errors import LimitReached
from shared.domain.models import Account, Job, JobStatus, utcnow
from shared.domain.tiers import TierLimits

PENDING_RETRY_AFTER = 10  # seconds: a pending job usually finishes by then
CAPACITY_RETRY_AFTER = 30


def check_submit_limits(
    session: Session, *, account: Account, tier_name: str, tier: TierLimits, max_queued_jobs: int
) -> None:
    """Raise ``LimitReached`` when a new job would break a limit. The account row is locked (until
    the caller's transaction ends), so concurrent submissions from one account are counted one
    after another."""
    session.exec(select(Account).where(col(Account.id) == account.id).with_for_update()).first()
    pending = session.exec(
        select(func.count())
        .select_from(Job)
        .where(col(Job.account_id) == account.id, col(Job.status).in_([JobStatus.queued, JobStatus.running]))
    ).one()
    if pending >= tier.max_pending:
        raise LimitReached(
            "max_pending",
            f"pending-jobs limit reached: {pending} of {tier.max_pending} jobs queued "
            f"or running for the {tier_name} tier; wait for one to finish",
            PENDING_RETRY_AFTER,
        )
    since = utcnow() - timedelta(hours=1)
    count, oldest = session.exec(
        select(func.count(), func.min(col(Job.created_at))).where(
            col(Job.account_id) == account.id, col(Job.created_at) > since
        )
    ).one()
    if count >= tier.jobs_per_hour:
        wait = max(1, math.ceil((oldest + timedelta(hours=1) - utcnow()).total_seconds()))
        raise LimitReached(
            "jobs_per_hour", f"hourly quota reached: {tier.jobs_per_hour} jobs per hour for the {tier_name} tier", wait
        )
    queued = session.exec(select(func.count()).select_from(Job).where(col(Job.status) == JobStatus.queued)).one()
    if queued >= max_queued_jobs:
        raise LimitReached(
            "max_queued_jobs",
            f"the service is at capacity ({queued} jobs waiting); try again shortly",
            CAPACITY_RETRY_AFTER,
            capacity=True,
        )
