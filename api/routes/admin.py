"""Operations for admin keys: the queue at a glance, API key management."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import forget_keys
from api.deps import RedisDep, SessionDep
from api.problems import ProblemException
from shared.domain import jobs
from shared.domain.accounts import create_account_with_key, list_keys, revoke_key
from shared.domain.models import Account, ApiKey, JobStatus, utcnow
from shared.domain.schemas import KeyCreate, KeyCreated, KeyOut, ModelQueue, QueueDepth, QueueReport
from shared.infra import registry

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/queue", response_model=QueueReport)
def queue(session: SessionDep, redis: RedisDep) -> QueueReport:
    """Waiting jobs per model and priority, the oldest wait, and live workers with their loaded models."""
    depth = [QueueDepth(model=m, priority=p, queued=n) for m, p, n in jobs.queue_depth(session)]
    now = utcnow()
    per_model: dict[str, ModelQueue] = {}
    for model, status, n, first in jobs.active_by_model(session):
        entry = per_model.setdefault(model, ModelQueue(model=model, queued=0, running=0, oldest_wait_seconds=None))
        if status == JobStatus.queued:
            entry.queued, entry.oldest_wait_seconds = n, round((now - first).total_seconds(), 3)
        else:
            entry.running = n
    return QueueReport(
        depth=depth, models=sorted(per_model.values(), key=lambda m: m.model), workers=registry.workers(redis)
    )


def _key_out(key: ApiKey, account: Account | None) -> dict[str, Any]:
    assert account is not None  # a key's account goes with it (ON DELETE CASCADE)
    return dict(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        account_id=account.id,
        tier=account.tier,
        admin=account.is_admin,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


@router.get("/keys", response_model=list[KeyOut])
def get_keys(session: SessionDep) -> list[KeyOut]:
    return [KeyOut(**_key_out(k, a)) for k, a in list_keys(session)]


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """A new account of the given tier (any tier of the configured table, SOUNDBOX_TIERS) with one key."""
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
    forget_keys()  # this process stops accepting it at once; others within SOUNDBOX_API_KEY_CACHE_SECONDS
    return KeyOut(**_key_out(key, session.get(Account, key.account_id)))
