"""The Redis limit counters (shared/domain/limits.py) on a real API process and real Redis:
concurrent submits never pass max_pending or jobs_per_hour, a terminal job gives its pending
place back, and the sweep repairs counters that drifted from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from tests.conftest import make_key, start_api

TIERS = {
    "free": {"max_duration": 30, "max_pending": 3, "jobs_per_hour": 1000, "priority_min": 0, "priority_max": 9},
    "supporter": {"max_duration": 30, "max_pending": 1000, "jobs_per_hour": 4, "priority_min": 0, "priority_max": 9},
    "premium": {"max_duration": 30, "max_pending": 1000, "jobs_per_hour": 1000, "priority_min": 0, "priority_max": 9},
    "creator": {"max_duration": 30, "max_pending": 1000, "jobs_per_hour": 1000, "priority_min": 0, "priority_max": 9},
}
BODY = {"model": "music", "prompt": "a short counting tune", "duration": 1}


@pytest.fixture(scope="module")
def counted_api(database, redis_client):
    url, proc = start_api({"SOUNDBOX_TIERS": json.dumps(TIERS)})
    yield url
    proc.terminate()
    proc.wait(10)


async def _burst(url: str, key: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        return await asyncio.gather(*(c.post("/v1/generations", json=BODY) for _ in range(n)))


def _account_of(key: str) -> uuid.UUID:
    from shared.domain.accounts import account_for_key
    from shared.infra.db import session_scope

    with session_scope() as s:
        account = account_for_key(s, key)
        assert account is not None
        return account.id


def _finish_all(responses: list[httpx.Response]) -> None:
    from shared.domain import jobs
    from shared.domain.models import JobStatus

    for r in responses:
        if r.status_code == 202:
            jobs.finish(uuid.UUID(r.json()["id"]), None, JobStatus.canceled, "test over")


@pytest.mark.parametrize(("tier", "cap", "limit"), [("free", 3, "max_pending"), ("supporter", 4, "jobs_per_hour")])
def test_concurrent_submits_never_pass_the_cap(counted_api, tier, cap, limit):
    key = make_key(f"burst {tier}", tier)
    responses = asyncio.run(_burst(counted_api, key, 24))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == cap and codes.count(429) == 24 - cap, codes
    refused = [r for r in responses if r.status_code == 429]
    assert {r.json()["limit"] for r in refused} == {limit}
    assert all(int(r.headers["retry-after"]) > 0 for r in refused)
    _finish_all(responses)


def test_a_terminal_job_gives_its_pending_place_back(counted_api, redis_client):
    from shared.domain import jobs, limits
    from shared.domain.models import JobStatus

    key = make_key("pending place", "free")
    account = _account_of(key)
    with httpx.Client(base_url=counted_api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        made = [c.post("/v1/generations", json=BODY) for _ in range(3)]
        assert [r.status_code for r in made] == [202, 202, 202]
        assert limits.counts(redis_client, account)["pending"] == 3
        assert c.post("/v1/generations", json=BODY).status_code == 429
        # a worker-side terminal change (not the API's cancel) frees the place through its event
        assert jobs.finish(uuid.UUID(made[0].json()["id"]), None, JobStatus.failed, "test: failed")
        assert limits.counts(redis_client, account)["pending"] == 2
        again = c.post("/v1/generations", json=BODY)
        assert again.status_code == 202
        _finish_all([*made, again])
    assert limits.counts(redis_client, account)["pending"] == 0


def test_the_sweep_repairs_drifted_counters(counted_api, redis_client):
    from shared.domain import limits
    from shared.infra.db import session_scope

    key = make_key("drift", "free")
    account = _account_of(key)
    with httpx.Client(base_url=counted_api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        made = [c.post("/v1/generations", json=BODY) for _ in range(2)]
        assert [r.status_code for r in made] == [202, 202]
    pending = limits.pending_key(account)
    # drift both ways: a phantom entry (a lost release) and a lost one (Redis restarted empty)
    redis_client.zadd(pending, {str(uuid.uuid4()): time.time() - 3600})
    redis_client.zrem(pending, made[0].json()["id"])
    redis_client.zrem(limits.hourly_key(account), made[0].json()["id"])
    before = limits.counts(redis_client, account)
    assert (before["pending"], before["hourly"]) == (2, 1)
    with session_scope() as s:
        report = limits.sweep(s, redis_client)
    assert report.added >= 2 and report.removed >= 1
    after = limits.counts(redis_client, account)
    assert (after["pending"], after["hourly"]) == (2, 2)
    held = {m.decode() for m in redis_client.zrange(pending, 0, -1)}
    assert held == {r.json()["id"] for r in made}
    _finish_all(made)
    assert limits.counts(redis_client, account)["pending"] == 0


def test_the_sweep_leaves_true_counters_alone_and_spares_fresh_admissions(counted_api, redis_client):
    """Counts first: a healthy state needs no rebuild; an entry newer than its row (an admission
    whose commit is under way) is never taken back, one older than the grace that stands for no
    pending job is."""
    from shared.domain import limits
    from shared.infra.db import session_scope

    key = make_key("settled", "free")
    account = _account_of(key)
    with httpx.Client(base_url=counted_api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        made = c.post("/v1/generations", json=BODY)
        assert made.status_code == 202
    with session_scope() as s:
        limits.sweep(s, redis_client)  # whatever other tests left behind
    with session_scope() as s:
        assert limits.sweep(s, redis_client) == limits.SweepReport(0, 0)
    pending = limits.pending_key(account)
    fresh, old = str(uuid.uuid4()), str(uuid.uuid4())
    redis_client.zadd(pending, {fresh: time.time(), old: time.time() - 120})
    with session_scope() as s:
        assert limits.sweep(s, redis_client) == limits.SweepReport(added=0, removed=1)
    assert {m.decode() for m in redis_client.zrange(pending, 0, -1)} == {made.json()["id"], fresh}
    redis_client.zrem(pending, fresh)
    _finish_all([made])
