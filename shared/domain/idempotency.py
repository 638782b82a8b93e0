"""Idempotency keys of job submissions: per account, a key remembers the request (a hash of its
body) and the job it made, for SOUNDBOX_IDEMPOTENCY_TTL_SECONDS. The row is written in the
transaction that creates the job, under the table's primary key, so two racing requests with one
key make one job: the second waits for the first's commit, then replays it."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import sqlmodel
from pydantic import BaseModel
from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from shared.domain.errors import IdempotencyConflict
from shared.domain.models import IdempotencyKey, Job, utcnow
from shared.infra import aiodb

NAME = "Idempotency-Key"  # how clients send it (an HTTP header); named in the conflict messages


def request_hash(body: BaseModel) -> str:
    """The request as validated (so white space and key order do not matter)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_KEYS = IdempotencyKey.__table__  # type: ignore[attr-defined]


def _lookup_stmt(account_id: Any, key: Any, now: Any):
    return select(_KEYS).where(_KEYS.c.account_id == account_id, _KEYS.c.key == key, _KEYS.c.expires_at > now)


def _remember_stmt(account_id: Any, key: Any, digest: Any, job_id: Any, now: Any, expires_at: Any):
    stmt = insert(_KEYS).values(
        account_id=account_id, key=key, request_hash=digest, job_id=job_id, created_at=now, expires_at=expires_at
    )
    return stmt.on_conflict_do_update(
        index_elements=["account_id", "key"],
        set_={
            "request_hash": stmt.excluded.request_hash,
            "job_id": stmt.excluded.job_id,
            "created_at": stmt.excluded.created_at,
            "expires_at": stmt.excluded.expires_at,
        },
        where=_KEYS.c.expires_at <= now,  # an expired key is free again
    ).returning(_KEYS.c.key)


def forget_stmt(account_id: Any, key: Any):
    return delete(_KEYS).where(_KEYS.c.account_id == account_id, _KEYS.c.key == key)


def _param(name: str, column: str) -> Any:
    return bindparam(name, type_=_KEYS.c[column].type)


# The same statements for the API's async pool (shared/infra/aiodb.py), compiled once.
LOOKUP = aiodb.Query(
    _lookup_stmt(_param("account_id", "account_id"), _param("key", "key"), _param("now", "expires_at"))
)
# ``remember_async``'s two statements: an expired key taken back, then the key itself
_PURGE_EXPIRED = aiodb.Query(
    delete(_KEYS).where(
        _KEYS.c.account_id == _param("account_id", "account_id"),
        _KEYS.c.key == _param("key", "key"),
        _KEYS.c.expires_at <= _param("now", "expires_at"),
    )
)
_CLAIM = aiodb.Query(insert(_KEYS))
FORGET = aiodb.Query(forget_stmt(_param("account_id", "account_id"), _param("key", "key")))


def lookup(session: Session, account_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    stmt = sqlmodel.select(IdempotencyKey).where(
        sqlmodel.col(IdempotencyKey.account_id) == account_id,
        sqlmodel.col(IdempotencyKey.key) == key,
        sqlmodel.col(IdempotencyKey.expires_at) > utcnow(),
    )
    return session.exec(stmt).first()


async def lookup_async(account_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    row = await aiodb.fetch_one(LOOKUP, {"account_id": account_id, "key": key, "now": utcnow()})
    return None if row is None else IdempotencyKey.model_validate(row)


def remember(
    session: Session, account_id: uuid.UUID, key: str, digest: str, job_id: uuid.UUID, ttl_seconds: int
) -> bool:
    """Tie the key to the job (in the caller's transaction). False when the key is already live:
    the caller then rolls back and replays."""
    now = utcnow()
    stmt = _remember_stmt(account_id, key, digest, job_id, now, now + timedelta(seconds=ttl_seconds))
    return session.execute(stmt).first() is not None


async def remember_async(
    conn: Any, account_id: uuid.UUID, key: str, digest: str, job_id: uuid.UUID, ttl_seconds: int
) -> None:
    """``remember`` in a pipelined transaction of the async pool (shared/infra/aiodb.transaction),
    without waiting for a result: an expired key is taken back, then the key is inserted. A live
    key makes that INSERT fail when the transaction ends (:func:`is_taken`), which rolls back."""
    now = utcnow()
    await aiodb.execute(conn, _PURGE_EXPIRED, {"account_id": account_id, "key": key, "now": now})
    row = {"account_id": account_id, "key": key, "request_hash": digest, "job_id": job_id, "created_at": now}
    await aiodb.execute(conn, _CLAIM, {**row, "expires_at": now + timedelta(seconds=ttl_seconds)})


def is_taken(exc: BaseException) -> bool:
    """``exc`` is the unique violation of a key that another request holds (``remember_async``)."""
    return isinstance(exc, psycopg.errors.UniqueViolation) and exc.diag.table_name == _KEYS.name


def forget(session: Session, account_id: uuid.UUID, key: str) -> None:
    session.exec(forget_stmt(account_id, key))


def replay(session: Session, row: IdempotencyKey | None, digest: str, key: str) -> Job:
    """The job the key made, when this request is the same one; ``IdempotencyConflict`` when its body differs."""
    job = session.get(Job, replayed_id(row, digest, key))
    assert job is not None  # the key's row goes with its job (ON DELETE CASCADE)
    return job


def replayed_id(row: IdempotencyKey | None, digest: str, key: str) -> uuid.UUID:
    if row is None:  # the racing request's key expired in between: extremely unlikely, say so
        raise IdempotencyConflict(f"{NAME} '{key}' is in use by a concurrent request; retry")
    if row.request_hash != digest:
        raise IdempotencyConflict(
            f"{NAME} '{key}' was already used with a different request body; use a new key for a new request"
        )
    return row.job_id
