"""Queue behaviour with real worker processes: priorities, cancel, redelivery after SIGKILL,
and one job never running twice at once."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import wait_for_job


@pytest.fixture
def idle_queues(redis_client, api_url):
    """No worker runs and no message waits when the test starts."""
    from shared import registry

    deadline = time.monotonic() + 30
    while registry.workers(redis_client) and time.monotonic() < deadline:
        time.sleep(0.5)  # a previous module's worker announces until its TTL ends
    for key in list(redis_client.scan_iter("*")):
        if not key.startswith(registry.PREFIX.encode()) and key != b"soundbox:test-run":
            redis_client.delete(key)


def submit(client, **fields) -> str:
    body = {"model": "music", "prompt": "test tone for the queue", "duration": 1, **fields}
    resp = client.post("/v1/generations", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def db_job(job_id: str):
    from shared.db import session_scope
    from shared.models import Job

    with session_scope() as s:
        return s.get(Job, uuid.UUID(job_id))


def wait_running(client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"] > 0:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ran")


def test_higher_priority_queued_later_runs_first(client, workers, idle_queues):
    low = [submit(client, priority=1, prompt=f"low priority job {i}") for i in range(2)]
    mid = submit(client, priority=5)
    high = submit(client, priority=9)
    workers.start(queues="music")
    jobs = {i: wait_for_job(client, i) for i in [*low, mid, high]}
    assert all(j["status"] == "succeeded" for j in jobs.values())
    order = sorted(jobs, key=lambda i: jobs[i]["started_at"])
    assert order == [high, mid, *low]  # by priority, then first come first served


def test_cancel_queued_job_never_runs(client, workers, idle_queues):
    doomed = submit(client)
    resp = client.post(f"/v1/jobs/{doomed}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "canceled"
    workers.start(queues="music")
    after = submit(client)  # queued behind the canceled one
    assert wait_for_job(client, after)["status"] == "succeeded"
    job = client.get(f"/v1/jobs/{doomed}").json()
    assert job["status"] == "canceled" and job["started_at"] is None and job["attempts"] == 0
    assert job["result"] is None and db_job(doomed).deliveries == 0


def test_cancel_running_job_stops_it(client, workers, idle_queues):
    workers.start(queues="music")
    job_id = submit(client, duration=30)
    wait_running(client, job_id)
    resp = client.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 200
    done = wait_for_job(client, job_id)
    assert done["status"] == "canceled" and done["result"] is None
    assert done["progress"] < 1.0


def test_redelivery_after_worker_is_killed(client, workers, idle_queues):
    first = workers.start(queues="music")
    job_id = submit(client, duration=30)
    wait_running(client, job_id)
    workers.kill(first)  # SIGKILL mid-job: no chance to ack or clean up
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    workers.start(queues="music")
    done = wait_for_job(client, job_id, timeout=180)
    assert done["status"] == "succeeded", done
    assert db_job(job_id).deliveries >= 2


def test_duplicate_delivery_does_not_run_twice(client, workers, idle_queues):
    from shared.celery_app import enqueue_job

    workers.start(queues="music", concurrency=2)
    job_id = submit(client, duration=30)
    wait_running(client, job_id)
    enqueue_job(job_id, "music", 5)  # a second delivery of the same job while it runs
    done = wait_for_job(client, job_id)
    assert done["status"] == "succeeded"
    row = db_job(job_id)
    assert row.deliveries == 1 and row.attempts == len(row.attempt_log) <= 3


def test_worker_serves_only_its_queues(client, workers, idle_queues):
    music = submit(client)
    speech = submit(client, model="voice", prompt="Only the voice queue is served.", duration=None)
    workers.start(queues="voice")
    assert wait_for_job(client, speech)["status"] == "succeeded"
    time.sleep(1)
    assert client.get(f"/v1/jobs/{music}").json()["status"] == "queued"
    workers.start(queues="music")
    assert wait_for_job(client, music)["status"] == "succeeded"
