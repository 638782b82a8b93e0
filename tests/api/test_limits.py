"""Tier limits and rate limits, on API processes started with small limits."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import make_key, start_api

TIERS = {
    "free": {"max_duration": 2, "max_pending": 2, "jobs_per_hour": 3, "priority_min": 0, "priority_max": 4},
    "supporter": {"max_duration": 60, "max_pending": 5, "jobs_per_hour": 120, "priority_min": 0, "priority_max": 5},
    "premium": {"max_duration": 120, "max_pending": 10, "jobs_per_hour": 300, "priority_min": 0, "priority_max": 7},
    "creator": {"max_duration": 180, "max_pending": 20, "jobs_per_hour": 600, "priority_min": 0, "priority_max": 9},
}


@pytest.fixture(scope="module")
def limited_api(database, redis_client):
    url, proc = start_api(
        {
            "SOUNDBOX_TIERS": json.dumps(TIERS),
            "SOUNDBOX_RATE_LIMITS": json.dumps(
                {"generate": [1000, 60], "read": [3, 60], "speech": [1000, 60], "admin": [1000, 60]}
            ),
        }
    )
    yield url
    proc.terminate()
    proc.wait(10)


def client_for(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_free_tier_limits(limited_api):
    with client_for(limited_api, make_key("free user", "free")) as c:
        body = {"model": "music", "prompt": "tiny free tier tune", "duration": 1}
        first = c.post("/v1/generations", json={**body, "priority": 9})
        assert first.status_code == 202 and first.json()["priority"] == 4  # clamped into the tier's range

        too_long = c.post("/v1/generations", json={**body, "duration": 3})
        assert too_long.status_code == 422 and "free tier" in too_long.json()["detail"]
        assert "duration" in {e["field"] for e in too_long.json()["errors"]}

        second = c.post("/v1/generations", json=body)
        assert second.status_code == 202
        third = c.post("/v1/generations", json=body)
        assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
        assert "pending-jobs limit" in third.json()["detail"] and third.json()["limit"] == "max_pending"

        assert c.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200
        assert c.post("/v1/generations", json=body).status_code == 202  # the third job this hour
        assert c.post(f"/v1/jobs/{second.json()['id']}/cancel").status_code == 200
        fourth = c.post("/v1/generations", json=body)
        assert fourth.status_code == 429 and fourth.json()["limit"] == "jobs_per_hour"
        assert "hourly quota" in fourth.json()["detail"] and 0 < int(fourth.headers["retry-after"]) <= 3600
        for job in c.get("/v1/jobs", params={"status": "queued"}).json()["items"]:
            c.post(f"/v1/jobs/{job['id']}/cancel")


def test_rate_limit_per_key_with_headers(limited_api):
    with (
        client_for(limited_api, make_key("reader", "free")) as c,
        client_for(limited_api, make_key("another reader", "free")) as other,
    ):
        remaining = []
        for _ in range(3):
            resp = c.get("/v1/models")
            assert resp.status_code == 200 and resp.headers["ratelimit-limit"] == "3"
            remaining.append(int(resp.headers["ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        refused = c.get("/v1/models")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0" and int(refused.headers["ratelimit-reset"]) > 0
        assert "rate limit" in refused.json()["detail"]
        assert other.get("/v1/models").status_code == 200  # buckets are per key


def test_global_queue_cap_is_503(database, redis_client):
    from sqlalchemy import text

    from shared.infra.db import session_scope

    with session_scope() as s:
        queued = s.exec(text("SELECT count(*) FROM jobs WHERE status = 'queued'")).one()[0]
    url, proc = start_api({"SOUNDBOX_MAX_QUEUED_JOBS": str(queued + 1)})
    try:
        with client_for(url, make_key("busy", "creator")) as c:
            body = {"model": "music", "prompt": "one more job please", "duration": 1}
            ok = c.post("/v1/generations", json=body)
            assert ok.status_code == 202
            full = c.post("/v1/generations", json=body)
            assert full.status_code == 503 and int(full.headers["retry-after"]) > 0
            assert "capacity" in full.json()["detail"]
            c.post(f"/v1/jobs/{ok.json()['id']}/cancel")
    finally:
        proc.terminate()
        proc.wait(10)


def test_submissions_are_rate_limited_in_the_script_that_admits_them(database, redis_client):
    """POST /v1/generations charges the caller's bucket in the same Redis script as the job's
    admission: accepted submits carry RateLimit-* headers, the refused one is a 429 that leaves
    no job behind."""
    limits = {"generate": [2, 60], "read": [1000, 60], "speech": [1000, 60], "admin": [1000, 60]}
    url, proc = start_api({"SOUNDBOX_TIERS": json.dumps(TIERS), "SOUNDBOX_RATE_LIMITS": json.dumps(limits)})
    try:
        with client_for(url, make_key("fast submitter", "creator")) as c:
            body = {"model": "music", "prompt": "a short marimba riff", "duration": 1}
            accepted = [c.post("/v1/generations", json=body) for _ in range(2)]
            assert [r.status_code for r in accepted] == [202, 202]
            assert [r.headers["ratelimit-remaining"] for r in accepted] == ["1", "0"]
            assert all(r.headers["ratelimit-limit"] == "2" for r in accepted)
            refused = c.post("/v1/generations", json=body)
            assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
            assert "rate limit exceeded for generate requests" in refused.json()["detail"]
            assert int(refused.headers["retry-after"]) >= 1 and refused.headers["ratelimit-remaining"] == "0"
            jobs = c.get("/v1/jobs").json()["items"]
            assert sorted(j["id"] for j in jobs) == sorted(r.json()["id"] for r in accepted)
            for job in jobs:
                c.post(f"/v1/jobs/{job['id']}/cancel")
    finally:
        proc.terminate()
        proc.wait(10)
