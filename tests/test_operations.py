"""Operations: the admin queue view, Prometheus metrics (API and worker), request ids."""

from __future__ import annotations

import time

import httpx

from tests.conftest import free_port, make_key, submit, wait_for_job


def test_admin_queue_metrics_and_worker_metrics(api_url, client, workers, idle_queues):
    admin = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {make_key('ops', 'creator', True)}"})
    waiting = [submit(client, priority=3), submit(client, priority=3), submit(client, model="audio", priority=7)]
    queue = admin.get("/v1/admin/queue").json()
    depth = {(d["model"], d["priority"]): d["queued"] for d in queue["depth"]}
    assert depth[("music", 3)] == 2 and depth[("audio", 7)] == 1
    models = {m["model"]: m for m in queue["models"]}
    assert models["music"]["queued"] == 2 and models["music"]["oldest_wait_seconds"] >= 0

    text = admin.get("/metrics").text
    assert 'soundbox_queue_depth{model="music",priority="3"} 2.0' in text
    assert "soundbox_http_requests_total" in text and "soundbox_http_request_duration_seconds_bucket" in text

    port = free_port()
    workers.start(queues="music,audio", env={"SOUNDBOX_WORKER_METRICS_PORT": str(port)})
    for job_id in waiting:
        assert wait_for_job(client, job_id)["status"] == "succeeded"
    worker_text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'soundbox_job_duration_seconds_count{model="music",outcome="succeeded"} 2.0' in worker_text
    assert 'soundbox_job_duration_seconds_count{model="audio",outcome="succeeded"} 1.0' in worker_text
    assert 'soundbox_generation_attempts_total{model="music"}' in worker_text
    assert "soundbox_quality_score_bucket" in worker_text and 'soundbox_model_loaded{model="music"} 1.0' in worker_text

    def serving_both():  # workers announce every few seconds
        live = admin.get("/v1/admin/queue").json()["workers"]
        return any(set(w["queues"]) == {"music", "audio"} and {"music", "audio"} <= set(w["loaded"]) for w in live)

    deadline = time.monotonic() + 20
    while not serving_both():
        assert time.monotonic() < deadline, admin.get("/v1/admin/queue").json()["workers"]
        time.sleep(0.5)


def test_request_ids(client):
    resp = client.get("/v1/models", headers={"X-Request-ID": "trace-me-123"})
    assert resp.headers["x-request-id"] == "trace-me-123"
    assert len(client.get("/v1/models").headers["x-request-id"]) == 32
