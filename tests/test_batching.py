"""Dynamic batching through the real service: API, a worker process, PostgreSQL, Redis, tiny models.
Requests sent together are generated together, each as it would sound alone; a worker killed
in the middle of a batch loses none of its jobs."""

from __future__ import annotations

import io
import time
import uuid

import numpy as np
import soundfile as sf
from sqlalchemy import func
from sqlmodel import select

from tests.conftest import db_job, submit, wait_for_job

MUSIC_WARM = {"SOUNDBOX_PRELOAD_MODELS": '["music"]'}  # loaded and warmed before the worker says it is ready


def audio(client, job: dict) -> np.ndarray:
    resp = client.get(job["result"]["audio_url"], params={"format": "wav"})
    assert resp.status_code == 200, resp.text
    samples, _ = sf.read(io.BytesIO(resp.content), dtype="float32")
    return samples


def test_requests_sent_together_generate_together_each_from_its_own_seed(client, workers, idle_queues):
    same = {"prompt": "warm rhodes chords", "duration": 3, "seed": 4242}
    ids = [submit(client, prompt=f"neighbour {i}", duration=3, seed=i) for i in range(5)]
    ids.insert(2, submit(client, **same))
    workers.start(queues="music", env=MUSIC_WARM)
    done = [wait_for_job(client, i) for i in ids]
    assert all(j["status"] == "succeeded" for j in done), [j["error"] for j in done]
    sizes = [j["attempt_history"][0]["batch"] for j in done]
    assert max(sizes) > 1, sizes  # they shared generation calls
    assert all(j["attempt_history"][0]["generated_seconds"] == 3 for j in done)

    alone = wait_for_job(client, submit(client, **same))  # the same request, now with no neighbour
    assert alone["status"] == "succeeded" and alone["attempt_history"][0]["batch"] == 1
    a, b = audio(client, alone), audio(client, done[2])
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= 2 / 32768, np.max(np.abs(a - b))  # 16-bit WAV: at most a step of rounding


def test_a_worker_killed_mid_batch_loses_none_of_its_jobs(client, workers, idle_queues):
    from shared.domain.models import Sound
    from shared.infra.db import session_scope

    ids = [submit(client, prompt=f"long take {i}", duration=10, seed=i) for i in range(4)]
    first = workers.start(queues="music", env=MUSIC_WARM)
    deadline = time.monotonic() + 90
    while not all(client.get(f"/v1/jobs/{i}").json()["status"] == "running" for i in ids):
        assert time.monotonic() < deadline, [client.get(f"/v1/jobs/{i}").json()["status"] for i in ids]
        time.sleep(0.05)
    assert len({db_job(i).worker for i in ids}) == 1  # one batch, one worker
    workers.kill(first)
    workers.start(queues="music", env=MUSIC_WARM)  # its sweep finds the expired leases and sends the jobs again
    done = [wait_for_job(client, i, timeout=180) for i in ids]
    assert [j["status"] for j in done] == ["succeeded"] * 4, [j["error"] for j in done]
    with session_scope() as s:
        for i in ids:
            assert db_job(i).deliveries == 2
            count = s.exec(select(func.count()).where(Sound.job_id == uuid.UUID(i))).one()
            assert count == 1  # finished once
