"""Queue behaviour with real worker processes: priorities, cancel, redelivery after SIGKILL,
and one job never running twice at once."""

from __future__ import annotations

import time

from tests.conftest import db_job, submit, wait_for_job, wait_running


def test_higher_priority_queued_later_runs_first(client, workers, idle_queues):
    low = [submit(client, priority=1, prompt=f"low priority job {i}") for i in range(2)]
    mid = submit(client, priority=5)
    high = submit(client, priority=9)
    workers.start(queues="music", env={"SOUNDBOX_BATCH_MAX": "1"})  # one call each: the order shows
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
    job_id = submit(client, duration=10)
    wait_running(client, job_id)
    resp = client.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 200
    done = wait_for_job(client, job_id)
    assert done["status"] == "canceled" and done["result"] is None
    assert done["progress"] < 1.0


def test_redelivery_after_worker_is_killed(client, workers, idle_queues):
    first = workers.start(queues="music")
    job_id = submit(client, duration=10)
    wait_running(client, job_id)
    workers.kill(first)  # SIGKILL mid-job: no chance to ack or clean up
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    workers.start(queues="music")
    done = wait_for_job(client, job_id, timeout=180)
    assert done["status"] == "succeeded", done
    assert db_job(job_id).deliveries >= 2


def test_duplicate_delivery_does_not_run_twice(client, workers, idle_queues):
    from shared.infra.celery_app import enqueue_job

    workers.start(queues="music", concurrency=2)
    job_id = submit(client, duration=10)
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
