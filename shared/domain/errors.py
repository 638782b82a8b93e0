"""What the domain refuses, and why. The API turns each into its problem+json answer
(api/problems.py); the worker and the CLI read them as they are. No HTTP here."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of the refusals below."""


class InvalidField(DomainError):
    """A request field breaks a rule only the domain knows (per model, per tier)."""

    def __init__(self, field: str, message: str, value: Any = None):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.value = field, message, value


class LimitReached(DomainError):
    """A tier limit (``capacity`` False: the caller must wait) or the service's capacity
    (``capacity`` True) refuses a submission; ``retry_after`` in seconds."""

    def __init__(self, limit: str, detail: str, retry_after: int, *, capacity: bool = False):
        super().__init__(detail)
        self.limit, self.detail, self.retry_after, self.capacity = limit, detail, retry_after, capacity


class RateLimited(DomainError):
    """The caller's rate limit (a token bucket) is empty; ``headers``: its RateLimit-* fields."""

    def __init__(self, detail: str, retry_after: int, headers: dict[str, str]):
        super().__init__(detail)
        self.detail, self.retry_after, self.headers = detail, retry_after, headers


class QueueUnavailable(DomainError):
    """The broker could not take the job; the job row was marked failed."""


class IdempotencyConflict(DomainError):
    """The idempotency key belongs to another request (different body, or one still racing)."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class JobFinished(DomainError):
    """The job is already terminal (cancel came too late)."""

    def __init__(self, job_id: Any, status: str):
        super().__init__(f"job {job_id} has already finished ({status})")
        self.job_id, self.status = job_id, status
