"""Database tables. PostgreSQL is the source of truth for job state."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Computed, DateTime, Index, String, UniqueConstraint, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

from shared.domain.tiers import DEFAULT_TIER


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class JobStatus(StrEnum):  # the one spelling of these names; the jobs.status column holds the values
    """A job's state: queued, running, then succeeded, failed or canceled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


TERMINAL_STATUSES = (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)
# The column is VARCHAR(16) holding the values; rows load as JobStatus members.
_STATUS_TYPE = SAEnum(
    JobStatus,
    native_enum=False,
    length=16,
    create_constraint=False,
    values_callable=lambda e: [m.value for m in e],
    validate_strings=True,
)


def _tz(**kw: Any) -> Column:
    return Column(DateTime(timezone=True), **kw)


ANONYMOUS_ACCOUNT_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


class Account(SQLModel, table=True):
    """Who owns jobs and sounds. Its tier decides limits; admins see everything."""

    __tablename__ = "accounts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    tier: str = Field(default=DEFAULT_TIER, max_length=32)
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
    status: JobStatus = Field(default=JobStatus.queued, index=True, sa_type=_STATUS_TYPE)
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
    # Where to tell the client about this job (signed webhooks) and which events it wants.
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_events: list[str] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    # Prompt guidance (shared/domain/prompts.py): what the checks said at submit, and how "auto" chose.
    warnings: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    model_choice: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))


class Visibility(StrEnum):
    private = "private"  # the owner (and admins) only; everyone else gets 404
    unlisted = "unlisted"  # anyone with the id
    public = "public"  # anyone with the id, listed in GET /v1/library and searchable by every account


class Sound(SQLModel, table=True):
    __tablename__ = "sounds"
    __table_args__ = (
        Index("ix_sounds_account_created", "account_id", "created_at", "id"),
        Index(
            "ix_sounds_public_created",
            "created_at",
            "id",
            postgresql_where=text("visibility = 'public' AND deleted_at IS NULL"),
        ),
        Index("ix_sounds_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_sounds_categories",
            "categories",
            postgresql_using="gin",
            postgresql_ops={"categories": "jsonb_path_ops"},
        ),
    )

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
    # The library (shared/domain/library.py): the owner's title and tags, who may see it, its categories.
    title: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(64)), nullable=False, server_default=text("'{}'::varchar[]")),
    )
    visibility: str = Field(
        default=Visibility.private.value, max_length=16, sa_column_kwargs={"server_default": Visibility.private.value}
    )
    categories: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    deleted_at: datetime | None = Field(
        default=None,
        sa_column=_tz(),
        description="Set when the owner deleted it: the objects are gone, the row stays as the job's tombstone.",
    )


# Full-text search over title (weight A) and prompt (weight B): a generated column PostgreSQL keeps
# up to date, on the table only (the ORM never writes it), read by shared/domain/library.py.
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, prompt), 'B')"
)
Sound.__table__.append_column(Column("search_vector", TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True)))  # type: ignore[attr-defined]
Index("ix_sounds_search", Sound.__table__.c.search_vector, postgresql_using="gin")  # type: ignore[attr-defined]


class WebhookSecret(SQLModel, table=True):
    """An account's webhook signing secret; after a rotation the previous one signs too until it expires."""

    __tablename__ = "webhook_secrets"

    account_id: uuid.UUID = Field(foreign_key="accounts.id", primary_key=True, ondelete="CASCADE")
    secret: str = Field(max_length=128)
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_expires_at: datetime | None = Field(default=None, sa_column=_tz())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    rotated_at: datetime | None = Field(default=None, sa_column=_tz())


class WebhookDeliveryState(StrEnum):
    pending = "pending"  # waiting for its next try
    succeeded = "succeeded"  # the receiver answered 2xx
    failed = "failed"  # every try of the retry schedule failed
    disabled = "disabled"  # the receiver answered 410 Gone: the URL gets nothing more
    skipped = "skipped"  # not sent: the URL was disabled earlier
    refused = "refused"  # not sent: the URL resolved to an address webhooks may not reach


class WebhookDelivery(SQLModel, table=True):
    """One event owed to one URL (an outbox row, written with the job's state change); its tries
    are ``WebhookAttempt`` rows. ``webhook_id`` is the Standard Webhooks message id, stable across retries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True, ondelete="CASCADE")
    account_id: uuid.UUID = Field(foreign_key="accounts.id", index=True, ondelete="CASCADE")
    event_type: str = Field(max_length=32)
    url: str = Field(max_length=2048)
    webhook_id: str = Field(max_length=64, unique=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    state: str = Field(default=WebhookDeliveryState.pending.value, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_column=_tz())
    lease_until: datetime | None = Field(default=None, sa_column=_tz())
    dispatched_at: datetime | None = Field(default=None, sa_column=_tz())
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_tz())


class WebhookAttempt(SQLModel, table=True):
    """One try of a delivery: when, what the receiver answered, how long it took, what went wrong."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(foreign_key="webhook_deliveries.id", index=True, ondelete="CASCADE")
    attempt: int
    attempted_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    address: str | None = Field(default=None, max_length=64, description="The IP address connected to.")


class WebhookDisabledUrl(SQLModel, table=True):
    """A URL that answered 410 Gone: the account's later events to it are recorded as skipped."""

    __tablename__ = "webhook_disabled_urls"

    account_id: uuid.UUID = Field(foreign_key="accounts.id", primary_key=True, ondelete="CASCADE")
    url: str = Field(max_length=2048, primary_key=True)
    disabled_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    delivery_id: uuid.UUID | None = Field(default=None, description="The delivery that got the 410.")


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key of one account: the request it came with (a hash) and the job it made."""

    __tablename__ = "idempotency_keys"

    account_id: uuid.UUID = Field(foreign_key="accounts.id", primary_key=True, ondelete="CASCADE")
    key: str = Field(max_length=255, primary_key=True)
    request_hash: str = Field(max_length=64)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    expires_at: datetime = Field(sa_column=_tz(nullable=False, index=True))
