"""Database tables. PostgreSQL is the source of truth for job state."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from sqlalchemy import Column, DateTime, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class JobStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


TERMINAL_STATUSES = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.canceled.value)


def _tz(**kw: Any) -> Column:
    return Column(DateTime(timezone=True), **kw)


ANONYMOUS_ACCOUNT_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


class Account(SQLModel, table=True):
    """Who owns jobs and sounds. Its tier decides limits; admins see everything."""

    __tablename__ = "accounts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    tier: str = Field(default="free", max_length=32)
    is_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; the prefix identifies it in listings."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=32, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=_tz())
    revoked_at: datetime | None = Field(default=None, sa_column=_tz())


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_running_lease", "lease_expires_at", postgresql_where=text("status = 'running'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", index=True)
    status: str = Field(default=JobStatus.queued.value, index=True, max_length=16)
    model: str = Field(index=True, max_length=32)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    priority: int = Field(default=5)
    queue_priority: int = Field(default=5, description="Priority of the latest broker message (raised by aging).")
    attempts: int = Field(default=0, description="Generation attempts made (quality retries included).")
    attempt_log: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    progress: float = Field(default=0.0)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_tz())
    finished_at: datetime | None = Field(default=None, sa_column=_tz())
    result_sound_id: uuid.UUID | None = None
    # Delivery bookkeeping: who runs it, until when its lease holds, how often it was claimed.
    cancel_requested: bool = Field(default=False)
    worker: str | None = Field(default=None, max_length=255)
    lease_expires_at: datetime | None = Field(default=None, sa_column=_tz())
    deliveries: int = Field(default=0)


class Sound(SQLModel, table=True):
    __tablename__ = "sounds"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    account_id: uuid.UUID = Field(foreign_key="accounts.id", index=True)
    model: str = Field(max_length=32)
    prompt: str
    duration: float
    sample_rate: int
    channels: int
    loopable: bool = False
    quality_score: float
    quality_is_good: bool
    quality_issues: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    audio_key: str
    spectrogram_key: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
