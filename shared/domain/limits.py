"""What an account may submit right now: its tier's pending-jobs cap and hourly quota, and the
service's cap on waiting jobs, kept atomically in Redis so no submission serializes on an account
row or counts a table.

Three sorted sets, members job ids, scores the job's ``created_at`` (epoch seconds):

- ``soundbox:limits:pending:<account>``: the account's queued or running jobs (``max_pending``);
- ``soundbox:limits:hourly:<account>``: the account's jobs made in the last hour (``jobs_per_hour``;
  the oldest tells the ``Retry-After``), trimmed as the window slides;
- ``soundbox:limits:queued``: every queued job (``max_queued_jobs``).

``admit`` (one Lua script, together with the token-bucket rate limit when the caller passes one)
checks the three caps and adds the job to all three at once, or adds nothing: two submissions can
never both take the last place. ``release`` takes back a job whose row was never committed.
After a job's state changes, ``on_event`` (called from shared/domain/events.publish, in the same
Redis pipeline as the event itself) keeps the sets true: ``job.started`` leaves the queued set, a
terminal event leaves the pending and queued sets, a requeued job (``job.queued`` again) returns
to the queued set. PostgreSQL stays the truth: ``sweep`` rebuilds the sets from it (added: pending
jobs missing from Redis, e.g. after Redis restarted empty; removed: ids no longer pending whose
entry is older than a grace, so a submission between its admission and its commit is not taken
back), run by every API process at start and then every ``SOUNDBOX_LIMITS_SWEEP_SECONDS`` by
whichever process takes the sweep's lock first. It compares counts first (one aggregate statement,
a ZCOUNT per set) and rebuilds only a set whose count is off, so with a long queue it stays cheap
(50,000 queued jobs: 3 ms of CPU, where reading them all took 1.3 s). Drift heals within one
interval (an entry younger than the grace: within two).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from shared.domain.errors import LimitReached, RateLimited
from shared.domain.models import Job, JobStatus
from shared.domain.tiers import TierLimits
from shared.infra.ratelimit import BucketResult

PENDING_RETRY_AFTER = 10  # seconds: a pending job usually finishes by then
CAPACITY_RETRY_AFTER = 30
WINDOW = 3600  # seconds: the hourly quota's sliding window
SWEEP_GRACE = 30.0  # seconds: an admitted job's entry may wait this long for its row to commit
PREFIX = "soundbox:limits:"
QUEUED_KEY = PREFIX + "queued"
SWEEP_LOCK = PREFIX + "sweep-lock"


def pending_key(account_id: uuid.UUID | str) -> str:
    return f"{PREFIX}pending:{account_id}"


def hourly_key(account_id: uuid.UUID | str) -> str:
    return f"{PREFIX}hourly:{account_id}"


# KEYS: pending, hourly, queued, [rate bucket]
# ARGV: job id, max_pending, jobs_per_hour, max_queued, window, the job's created_at (epoch seconds:
# the entries' score, the same number the sweep reads from PostgreSQL), [bucket capacity, rate, cost]
# Returns {verdict, count, oldest hourly score, bucket allowed, bucket tokens}; verdict 0 admitted,
# 1 max_pending, 2 jobs_per_hour, 3 max_queued_jobs, 4 rate limit.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local allowed, tokens = 1, -1
if KEYS[4] then
  local capacity, rate, cost = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  local b = redis.call('HMGET', KEYS[4], 'tokens', 'ts')
  tokens = tonumber(b[1]) or capacity
  local ts = tonumber(b[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  if tokens >= cost then tokens = tokens - cost else allowed = 0 end
  redis.call('HSET', KEYS[4], 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[4], math.ceil(capacity / rate) + 1)
  if allowed == 0 then return {4, 0, '0', allowed, tostring(tokens)} end
end
local window = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local pending = redis.call('ZCARD', KEYS[1])
if pending >= tonumber(ARGV[2]) then return {1, pending, '0', allowed, tostring(tokens)} end
local hourly = redis.call('ZCARD', KEYS[2])
if hourly >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {2, hourly, tostring(oldest[2] or now) .. ':' .. tostring(now), allowed, tostring(tokens)}
end
local queued = redis.call('ZCARD', KEYS[3])
if queued >= tonumber(ARGV[4]) then return {3, queued, '0', allowed, tostring(tokens)} end
local created = ARGV[6]
redis.call('ZADD', KEYS[1], created, ARGV[1])
redis.call('ZADD', KEYS[2], created, ARGV[1])
redis.call('EXPIRE', KEYS[2], window + 60)
redis.call('ZADD', KEYS[3], created, ARGV[1])
return {0, 0, '0', allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Bucket:
    """The caller's token bucket for this request (shared/infra/ratelimit.py), charged by the same script."""

    key: str
    limit: int
    per_seconds: float
    route_class: str = "generate"

    def result(self, allowed: bool, tokens: float) -> BucketResult:
        return BucketResult(allowed, self.limit, tokens, self.limit / self.per_seconds)


@dataclass(frozen=True)
class Admission:
    keys: list[str]
    args: list[Any]
    tier_name: str
    tier: TierLimits
    bucket: Bucket | None


def admission(
    job: Job,
    tier_name: str,
    tier: TierLimits,
    max_queued_jobs: int,
    bucket: Bucket | None = None,
) -> Admission:
    keys = [pending_key(job.account_id), hourly_key(job.account_id), QUEUED_KEY]
    args: list[Any] = [
        str(job.id),
        tier.max_pending,
        tier.jobs_per_hour,
        max_queued_jobs,
        WINDOW,
        repr(job.created_at.timestamp()),
    ]
    if bucket is not None:
        keys.append(bucket.key)
        args += [bucket.limit, bucket.limit / bucket.per_seconds, 1]
    return Admission(keys, args, tier_name, tier, bucket)


def verdict(adm: Admission, reply: list[Any], max_queued_jobs: int) -> BucketResult | None:
    """Raise ``RateLimited`` or ``LimitReached`` for a refusal; else the bucket's state after the
    charge (None without a bucket)."""
    code, count, extra = int(reply[0]), int(reply[1]), reply[2]
    bucket = adm.bucket.result(code != 4, float(reply[4])) if adm.bucket is not None else None
    if isinstance(extra, bytes):
        extra = extra.decode()
    if code == 4 and adm.bucket is not None and bucket is not None:
        b = adm.bucket
        raise RateLimited(
            f"rate limit exceeded for {b.route_class} requests: {b.limit} per {b.per_seconds:g} s per key",
            bucket.retry_after,
            bucket.headers(),
        )
    if code == 0:
        return bucket
    if code == 1:
        raise LimitReached(
            "max_pending",
            f"pending-jobs limit reached: {count} of {adm.tier.max_pending} jobs queued "
            f"or running for the {adm.tier_name} tier; wait for one to finish",
            PENDING_RETRY_AFTER,
        )
    if code == 2:
        oldest, now = (float(x) for x in str(extra).split(":"))
        wait = max(1, math.ceil(oldest + WINDOW - now))
        raise LimitReached(
            "jobs_per_hour",
            f"hourly quota reached: {adm.tier.jobs_per_hour} jobs per hour for the {adm.tier_name} tier",
            wait,
        )
    raise LimitReached(
        "max_queued_jobs",
        f"the service is at capacity ({count} jobs waiting); try again shortly",
        CAPACITY_RETRY_AFTER,
        capacity=True,
    )


def release_commands(pipe: Any, job_id: uuid.UUID | str, account_id: uuid.UUID | str) -> None:
    """Take a job back out of all three sets (its row was never committed)."""
    member = str(job_id)
    pipe.zrem(pending_key(account_id), member)
    pipe.zrem(hourly_key(account_id), member)
    pipe.zrem(QUEUED_KEY, member)


def on_event(pipe: Any, job_id: str, account_id: str, event_type: str) -> None:
    """Keep the sets true after a committed state change (queued in the caller's pipeline)."""
    if not account_id:
        return
    if event_type == "job.queued":  # submitted (already there) or requeued after a lost lease
        pipe.zadd(QUEUED_KEY, {job_id: time.time()}, nx=True)
        pipe.zadd(pending_key(account_id), {job_id: time.time()}, nx=True)
    elif event_type == "job.started":
        pipe.zrem(QUEUED_KEY, job_id)
    elif event_type in ("job.succeeded", "job.failed", "job.canceled"):
        pipe.zrem(QUEUED_KEY, job_id)
        pipe.zrem(pending_key(account_id), job_id)


# --- the sweep: PostgreSQL is the truth ------------------------------------------------------------


@dataclass
class SweepReport:
    added: int = 0
    removed: int = 0


def sweep(session: Session, client: Any, grace_seconds: float = SWEEP_GRACE) -> SweepReport:
    """Rebuild the three sets from PostgreSQL (synchronous Redis client) where they drifted: add
    pending, queued and last-hour jobs missing from Redis (scored by their creation), remove
    entries older than ``grace_seconds`` whose job is no longer pending / queued / in the window.

    First it compares counts only (:func:`_drifted`): one aggregate statement against a ZCOUNT per
    set, over the jobs settled longer than ``grace_seconds`` (an admission's entry and its row
    carry the same time, the row's ``created_at``). Only a set whose count differs is rebuilt
    member by member, so a sweep of a healthy service with a long queue reads no job rows. (The
    limits read counts only: a set whose count is right needs nothing, whichever ids it holds.)"""
    now = time.time()
    drifted = _drifted(session, client, cut=now - grace_seconds, since=now - WINDOW)
    if not drifted:
        return SweepReport()
    since = datetime.fromtimestamp(now - WINDOW, UTC)
    mine = col(Job.account_id).in_(_accounts_of(drifted))  # the queued set needs every account's rows
    pending = select(col(Job.id), col(Job.account_id), col(Job.status), col(Job.created_at))
    pending = pending.where(col(Job.status).in_(_PENDING), *([] if QUEUED_KEY in drifted else [mine]))
    pending_rows = session.exec(pending).all()
    hourly_rows = session.exec(
        select(col(Job.id), col(Job.account_id), col(Job.created_at)).where(col(Job.created_at) > since, mine)
    ).all()
    truth: dict[str, dict[str, float]] = {}  # redis key -> {member: score}

    def put(key: str, job_id: uuid.UUID, created) -> None:
        truth.setdefault(key, {})[str(job_id)] = created.timestamp()

    truth[QUEUED_KEY] = {}
    for job_id, account_id, status, created in pending_rows:
        put(pending_key(account_id), job_id, created)
        if status == JobStatus.queued:
            put(QUEUED_KEY, job_id, created)
    for job_id, account_id, created in hourly_rows:
        put(hourly_key(account_id), job_id, created)
    report = SweepReport()
    for key in sorted(drifted):
        held = {(m.decode() if isinstance(m, bytes) else m): s for m, s in client.zrange(key, 0, -1, withscores=True)}
        want = truth.get(key, {})
        missing = {m: s for m, s in want.items() if m not in held}
        stale = [m for m, s in held.items() if m not in want and s < now - grace_seconds]
        pipe = client.pipeline(transaction=False)
        if missing:
            pipe.zadd(key, missing, nx=True)
        if stale:
            pipe.zrem(key, *stale)
        if key.startswith(PREFIX + "hourly:") and missing:
            pipe.expire(key, WINDOW + 60)
        if missing or stale:
            pipe.execute()
        report.added += len(missing)
        report.removed += len(stale)
    return report


_PENDING = (JobStatus.queued, JobStatus.running)


def _accounts_of(keys: set[str]) -> list[uuid.UUID]:
    """The accounts of per-account keys (``…:pending:<id>``, ``…:hourly:<id>``); others are skipped."""
    found = []
    for key in keys:
        try:
            found.append(uuid.UUID(key.rsplit(":", 1)[1]))
        except ValueError:
            continue
    return found


def _drifted(session: Session, client: Any, *, cut: float, since: float) -> set[str]:
    """The sets that need a rebuild. Entries scored before ``cut`` must match PostgreSQL's jobs
    created before it in number; newer ones may outnumber their rows (an admission comes before
    its commit) but never fall short of them. (The hourly sets count from ``since``.)"""
    cut_at, since_at = datetime.fromtimestamp(cut, UTC), datetime.fromtimestamp(since, UTC)
    recent = col(Job.created_at) >= cut_at
    pending = col(Job.status).in_(_PENDING)
    queued = col(Job.status) == JobStatus.queued
    in_window = col(Job.created_at) > since_at
    rows: Sequence[Any] = session.exec(
        select(
            col(Job.account_id),
            *(func.count().filter(kind, when) for kind in (pending, in_window, queued) for when in (~recent, recent)),
        )
        .where(or_(pending, in_window))
        .group_by(col(Job.account_id))
    ).all()
    want = {QUEUED_KEY: (sum(row[5] for row in rows), sum(row[6] for row in rows))}
    for account_id, *n in rows:
        want[pending_key(account_id)], want[hourly_key(account_id)] = (n[0], n[1]), (n[2], n[3])
    keys = set(want)
    for pattern in (PREFIX + "pending:*", PREFIX + "hourly:*"):
        keys.update(k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=pattern, count=1000))
    ordered = sorted(keys)
    pipe = client.pipeline(transaction=False)
    for key in ordered:  # the statement's bounds: (since, cut) and [cut, +inf)
        pipe.zcount(key, f"({since!r}" if key.startswith(PREFIX + "hourly:") else "-inf", f"({cut!r}")
        pipe.zcount(key, repr(cut), "+inf")
    held = pipe.execute()
    drifted = set()
    for i, key in enumerate(ordered):
        settled, newer = want.get(key, (0, 0))
        if held[2 * i] != settled or held[2 * i + 1] < newer:
            drifted.add(key)
    return drifted


def counts(client: Any, account_id: uuid.UUID | str) -> dict[str, int]:
    """What Redis holds for ``account_id`` now (pending, hourly) and the service (queued)."""
    pipe = client.pipeline(transaction=False)
    pipe.zcard(pending_key(account_id))
    pipe.zcount(hourly_key(account_id), time.time() - WINDOW, "+inf")
    pipe.zcard(QUEUED_KEY)
    pending, hourly, queued = pipe.execute()
    return {"pending": int(pending), "hourly": int(hourly), "queued": int(queued)}


def sweep_if_due(client: Any, interval: float, force: bool = False) -> SweepReport | None:
    """One sweep, unless another process swept less than ``interval`` ago (a Redis lock; ``force``:
    sweep anyway, as an API process does at start). None when skipped."""
    from shared.infra.db import session_scope

    if not force and not client.set(SWEEP_LOCK, str(time.time()), nx=True, ex=max(1, int(interval * 0.9))):
        return None
    with session_scope() as session:
        return sweep(session, client)
