"""Idempotency keys of job submissions: per account, a key remembers the request (a hash of its
body) and the job it made, for SOUNDBOX_IDEMPOTENCY_TTL_SECONDS. The row is written in the
transaction that creates the job, under the table's primary key, so two racing requests with one
key make one job: the second waits for the first's commit, then replays it."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.domain.errors import IdempotencyConflict
from shared.domain.models import IdempotencyKey, Job, utcnow

NAME = "Idempotency-Key"  # how clients send it (an HTTP header); named in the conflict messages


def request_hash(body: BaseModel) -> str:
    """The request as validated (so white space and key order do not matter)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lookup_stmt(account_id: uuid.UUID, key: str):
    return select(IdempotencyKey).where(
        col(IdempotencyKey.account_id) == account_id,
        col(IdempotencyKey.key) == key,
        col(IdempotencyKey.expires_at) > utcnow(),
    )


def lookup(session: Session, account_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return session.exec(_lookup_stmt(account_id, key)).first()


async def lookup_async(session: AsyncSession, account_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return (await session.exec(_lookup_stmt(account_id, key))).first()


def remember(
    session: Session, account_id: uuid.UUID, key: str, digest: str, job_id: uuid.UUID, ttl_seconds: int
) -> bool:
    """Tie the key to the job (in the caller's transaction). False when the key is already live:
    the caller then rolls back and replays."""
    return session.exec(_remember_stmt(account_id, key, digest, job_id, ttl_seconds)).first() is not None


async def remember_async(
    session: AsyncSession, account_id: uuid.UUID, key: str, digest: str, job_id: uuid.UUID, ttl_seconds: int
) -> bool:
    return (await session.exec(_remember_stmt(account_id, key, digest, job_id, ttl_seconds))).first() is not None


def _remember_stmt(account_id: uuid.UUID, key: str, digest: str, job_id: uuid.UUID, ttl_seconds: int):
    now = utcnow()
    stmt = insert(IdempotencyKey).values(
        account_id=account_id,
        key=key,
        request_hash=digest,
        job_id=job_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=["account_id", "key"],
        set_={
            "request_hash": stmt.excluded.request_hash,
            "job_id": stmt.excluded.job_id,
            "created_at": stmt.excluded.created_at,
            "expires_at": stmt.excluded.expires_at,
        },
        where=col(IdempotencyKey.expires_at) <= now,  # an expired key is free again
    ).returning(col(IdempotencyKey.key))
    return upsert


def forget_stmt(account_id: uuid.UUID, key: str):
    return delete(IdempotencyKey).where(col(IdempotencyKey.account_id) == account_id, col(IdempotencyKey.key) == key)


def forget(session: Session, account_id: uuid.UUID, key: str) -> None:
    session.exec(forget_stmt(account_id, key))


def replay(session: Session, row: IdempotencyKey | None, digest: str, key: str) -> Job:
    """The job the key made, when this request is the same one; ``IdempotencyConflict`` when its body differs."""
    job = session.get(Job, _replayed_id(row, digest, key))
    assert job is not None  # the key's row goes with its job (ON DELETE CASCADE)
    return job


async def replay_async(session: AsyncSession, row: IdempotencyKey | None, digest: str, key: str) -> Job:
    job = await session.get(Job, _replayed_id(row, digest, key))
    assert job is not None
    return job


def _replayed_id(row: IdempotencyKey | None, digest: str, key: str) -> uuid.UUID:
    if row is None:  # the racing request's key expired in between: extremely unlikely, say so
        raise IdempotencyConflict(f"{NAME} '{key}' is in use by a concurrent request; retry")
    if row.request_hash != digest:
        raise IdempotencyConflict(
            f"{NAME} '{key}' was already used with a different request body; use a new key for a new request"
        )
    return row.job_id
