"""Fairness with real workers: aging lets low-priority work through a steady flood of
high-priority work; model affinity keeps a worker on its loaded model."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

from tests.conftest import submit, wait_for_job


def _ts(job: dict, field: str) -> datetime | None:
    return datetime.fromisoformat(job[field]) if job[field] else None


def test_aging_lets_low_priority_through_a_steady_flood(client, workers, idle_queues):
    low = submit(client, priority=0, prompt="patient low priority job")
    flood = [submit(client, priority=9, prompt=f"urgent job {i}") for i in range(4)]
    # One job per generation call: compatible jobs would otherwise share a batch, and this is about order.
    env = {"SOUNDBOX_AGING_SECONDS": "1", "SOUNDBOX_RECOVERY_INTERVAL": "1", "SOUNDBOX_BATCH_MAX": "1"}
    workers.start(queues="music", env=env)
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{low}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "the low-priority job starved"
        waiting = [j for j in flood if client.get(f"/v1/jobs/{j}").json()["status"] == "queued"]
        for _ in range(max(0, 3 - len(waiting))):  # keep high-priority work waiting, always
            flood.append(submit(client, priority=9, prompt=f"urgent job {len(flood)}"))
        time.sleep(0.2)
    low_job = wait_for_job(client, low)
    assert low_job["status"] == "succeeded"
    jobs = [client.get(f"/v1/jobs/{j}").json() for j in flood]
    started = _ts(low_job, "started_at")
    overtaken = [
        j
        for j in jobs
        if _ts(j, "created_at") < started
        and (_ts(j, "started_at") or datetime.max.replace(tzinfo=started.tzinfo)) > started
    ]
    ahead = [j for j in jobs if j["started_at"] and _ts(j, "started_at") < started]
    assert ahead, "the flood did run first"
    assert overtaken, "the low-priority job ran while high-priority jobs were still waiting"


def test_model_affinity_groups_jobs_by_loaded_model(client, workers, idle_queues):
    ids = []
    for i in range(3):  # interleaved submissions, equal priority
        ids.append(submit(client, model="music", prompt=f"music job {i}"))
        ids.append(submit(client, model="audio", prompt=f"audio job {i}"))
    workers.start(queues="music,audio")
    jobs = sorted((wait_for_job(client, i) for i in ids), key=lambda j: j["started_at"])
    assert all(j["status"] == "succeeded" for j in jobs)
    models = [j["model"] for j in jobs]
    switches = sum(1 for a, b in itertools.pairwise(models) if a != b)
    assert switches == 1, models  # all of one model, then all of the other
