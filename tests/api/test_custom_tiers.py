"""Tiers redefined with SOUNDBOX_TIERS are tiers like the default ones: `soundbox keys create
--tier` and the admin API assign them, and their limits apply to the keys' jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from sqlmodel import select

from shared.domain.accounts import hash_key
from shared.domain.models import Account, ApiKey
from shared.infra.db import session_scope
from tests.conftest import ROOT, make_key, start_api

TIERS = {
    "free": {"max_duration": 4, "max_pending": 2, "jobs_per_hour": 10, "priority_min": 0, "priority_max": 4},
    "studio": {"max_duration": 2, "max_pending": 3, "jobs_per_hour": 10, "priority_min": 3, "priority_max": 6},
}
ENV = {"SOUNDBOX_TIERS": json.dumps(TIERS)}


def tier_of_key(secret: str) -> str:
    with session_scope() as s:
        key = s.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).one()
        account = s.get(Account, key.account_id)
        assert account is not None
        return account.tier


@pytest.fixture(scope="module")
def custom_api(database, redis_client):
    url, proc = start_api(ENV)
    yield url
    proc.terminate()
    proc.wait(10)


def test_cli_creates_a_key_of_a_custom_tier(database):
    run = subprocess.run(
        [sys.executable, "-m", "soundbox.cli", "keys", "create", "--name", "studio user", "--tier", "studio"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
    )
    assert run.returncode == 0, run.stderr
    secret = run.stdout.strip()
    assert "(studio)" in run.stderr and tier_of_key(secret) == "studio"


def test_cli_refuses_a_tier_the_table_does_not_have(database):
    run = subprocess.run(
        [sys.executable, "-m", "soundbox.cli", "keys", "create", "--name", "x", "--tier", "creator"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
    )
    assert run.returncode != 0 and run.stdout == ""
    assert "unknown tier 'creator'" in run.stderr and "free, studio" in run.stderr


def test_admin_api_assigns_a_custom_tier_and_its_limits_apply(custom_api):
    admin = httpx.Client(
        base_url=custom_api, headers={"Authorization": f"Bearer {make_key('ops', admin=True)}"}, timeout=30
    )
    with admin:
        made = admin.post("/v1/admin/keys", json={"name": "studio via api", "tier": "studio"})
        assert made.status_code == 201, made.text
        assert made.json()["tier"] == "studio" and tier_of_key(made.json()["key"]) == "studio"

        refused = admin.post("/v1/admin/keys", json={"name": "nope", "tier": "creator"})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "tier" and "free, studio" in refused.json()["detail"]

    with httpx.Client(
        base_url=custom_api, headers={"Authorization": f"Bearer {made.json()['key']}"}, timeout=30
    ) as studio:
        body = {"model": "music", "prompt": "a studio tier tune", "duration": 1}
        too_long = studio.post("/v1/generations", json={**body, "duration": 3})
        assert too_long.status_code == 422 and "the studio tier" in too_long.json()["detail"]
        job = studio.post("/v1/generations", json={**body, "priority": 9})
        assert job.status_code == 202 and job.json()["priority"] == 6  # clamped into studio's 3-6
        assert studio.post(f"/v1/jobs/{job.json()['id']}/cancel").json()["status"] == "canceled"
