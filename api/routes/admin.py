"""Operations for admin keys: the queue at a glance, API key management."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import col, select

from api.deps import RedisDep, SessionDep
from api.problems import ProblemException
from shared.infra import registry
from shared.domain.accounts import create_account_with_key, list_keys, revoke_key
from shared.domain.models import Account, ApiKey, Job, JobStatus, utcnow

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class QueueDepth(BaseModel):
    model: str
    priority: int
    queued: int


class ModelQueue(BaseModel):
    model: str
    queued: int
    running: int
    oldest_wait_seconds: float | None


class QueueReport(BaseModel):
    depth: list[QueueDepth]
    models: list[ModelQueue]
    workers: list[dict]


@router.get("/queue", response_model=QueueReport)
def queue(session: SessionDep, redis: RedisDep) -> QueueReport:
    """Waiting jobs per model and priority, the oldest wait, and live workers with their loaded models."""
    queued = col(Job.status) == JobStatus.queued.value
    depth = [QueueDepth(model=m, priority=p, queued=n) for m, p, n in session.exec(
        select(Job.model, Job.priority, func.count()).where(queued).group_by(Job.model, Job.priority)
        .order_by(Job.model, col(Job.priority).desc()))]
    now = utcnow()
    per_model: dict[str, ModelQueue] = {}
    for model, status, n, first in session.exec(
            select(Job.model, Job.status, func.count(), func.min(Job.created_at))
            .where(col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]))
            .group_by(Job.model, Job.status)):
        entry = per_model.setdefault(model, ModelQueue(model=model, queued=0, running=0, oldest_wait_seconds=None))
        if status == JobStatus.queued.value:
            entry.queued, entry.oldest_wait_seconds = n, round((now - first).total_seconds(), 3)
        else:
            entry.running = n
    return QueueReport(depth=depth, models=sorted(per_model.values(), key=lambda m: m.model),
                       workers=registry.workers(redis))


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    tier: Literal["free", "supporter", "premium", "creator"] = "free"
    admin: bool = False


class KeyOut(BaseModel):
    id: uuid.UUID
    prefix: str
    name: str
    account_id: uuid.UUID
    tier: str
    admin: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


def _key_out(key: ApiKey, account: Account) -> dict:
    return dict(id=key.id, prefix=key.prefix, name=key.name, account_id=account.id, tier=account.tier,
                admin=account.is_admin, created_at=key.created_at, last_used_at=key.last_used_at,
                revoked_at=key.revoked_at)


@router.get("/keys", response_model=list[KeyOut])
def get_keys(session: SessionDep) -> list[KeyOut]:
    return [KeyOut(**_key_out(k, a)) for k, a in list_keys(session)]


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """A new account of the given tier with one key."""
    new = create_account_with_key(session, body.name, body.tier, body.admin)
    session.commit()
    return KeyCreated(**_key_out(new.key, new.account), key=new.secret)


@router.post("/keys/{key_ref}/revoke", response_model=KeyOut)
def revoke(key_ref: str, session: SessionDep) -> KeyOut:
    """Revoke by key id or prefix; requests with it get 401 from now on."""
    key = revoke_key(session, key_ref)
    if key is None:
        raise ProblemException(404, f"no key {key_ref}")
    session.commit()
    return KeyOut(**_key_out(key, session.get(Account, key.account_id)))
