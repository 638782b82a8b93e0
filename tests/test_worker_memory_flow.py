"""The GPU worker's behaviour through the real service (API, PostgreSQL, Redis, Celery worker
processes, tiny audiocraft models on CPU): long music in windows with progress across them,
sampling controls reaching the engine reproducibly, model states and footprints in heartbeats
and /v1/models, warm-up before readiness, a clear failure when memory never fits, and a
worker refusing a GPU that is not there."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import wave

import httpx
import pytest

from tests.conftest import _TMP, ROOT, Workers, wait_for_job
from tests.test_live import read_sse


@pytest.fixture(scope="module")
def music_worker(redis_client, api_url):
    w = Workers(redis_client)
    w.start(queues="music", env={"SOUNDBOX_MAX_ATTEMPTS": "1", "SOUNDBOX_WARMUP": "true"})  # warm-up is checked
    yield w
    w.stop_all()


def frames_of(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnframes()


def test_long_music_in_windows_with_progress_across_them(client, music_worker):
    resp = client.post(
        "/v1/generations", json={"model": "music", "prompt": "a long slow ambient drone", "duration": 40, "seed": 99}
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    events = read_sse(
        f"{client.base_url}/v1/jobs/{job['id']}/events", {"Authorization": client.headers["authorization"]}, timeout=300
    )
    assert events[-1]["event"] == "job.succeeded", events[-1]
    # tiny music: 10 s windows advancing 5 s -> 7 windows; progress moves through them, not at the end only
    progress = [e["data"]["data"]["progress"] for e in events if e["event"] == "job.progress"]
    during = sorted({p for p in progress if 0 < p < 0.9})
    assert len(during) >= 2 and progress == sorted(progress), progress
    done = wait_for_job(client, job["id"])
    assert done["result"]["duration"] == pytest.approx(40, abs=0.02)
    rate, frames = frames_of(client.get(done["result"]["audio_url"]).content)
    assert rate == 32000 and frames / rate == pytest.approx(40, abs=0.02)
    # the controls the job was sampled with are on it: audiocraft's MusicGen defaults
    params = done["params"]
    assert (params["top_k"], params["top_p"], params["temperature"], params["cfg_coef"]) == (250, 0.0, 1.0, 3.0)


def test_controls_reach_the_engine_and_the_seed_reproduces(client, music_worker):
    body = {
        "model": "music",
        "prompt": "plucked strings",
        "duration": 2,
        "seed": 42,
        "top_k": 50,
        "temperature": 0.8,
        "cfg_coef": 2.0,
    }
    first, again = (wait_for_job(client, client.post("/v1/generations", json=body).json()["id"]) for _ in range(2))
    other = wait_for_job(client, client.post("/v1/generations", json={**body, "top_p": 0.5, "top_k": 0}).json()["id"])
    for job in (first, again, other):
        assert job["status"] == "succeeded", job
    assert (first["params"]["top_k"], first["params"]["top_p"], first["params"]["temperature"]) == (50, 0.0, 0.8)
    assert (other["params"]["top_k"], other["params"]["top_p"]) == (0, 0.5)

    def audio(job: dict) -> bytes:
        return client.get(job["result"]["audio_url"]).content

    assert audio(first) == audio(again)  # same seed, same controls: the same sound
    assert audio(first) != audio(other)  # other controls, same seed: another sound


def test_models_show_each_workers_states_and_footprints(client, music_worker, redis_client):
    from shared.infra import registry

    assert (
        wait_for_job(
            client,
            client.post("/v1/generations", json={"model": "music", "prompt": "short riff", "duration": 1}).json()["id"],
        )["status"]
        == "succeeded"
    )
    [beat] = [w for w in registry.workers(redis_client) if w.get("queues") == ["music"]]
    assert beat["ready"] is True and beat["device"] == "cpu"
    assert beat["memory"]["free_bytes"] > 0 and beat["memory"]["margin_bytes"] == 2_000_000_000
    [entry] = [m for m in beat["models"] if m["model"] == "music"]
    assert entry["state"] in ("ready", "generating") and entry["footprint_bytes"] is not None
    assert entry["load_seconds"] > 0 and entry["warmup_seconds"] > 0  # warmed up before its first job

    music = {m["id"]: m for m in client.get("/v1/models").json()["models"]}["music"]
    assert music["state"] == "loaded" and music["hub_id"] is None and "checkpoint" not in music
    [copy] = [c for c in music["workers"] if c["worker"] == beat["name"]]
    assert copy["state"] in ("ready", "generating") and copy["device"] == "cpu"
    assert copy["footprint_bytes"] == entry["footprint_bytes"] and copy["estimate_bytes"] > 0
    assert music["window_seconds"] == 10 and music["max_duration"] == 120


def test_a_warming_worker_is_not_ready_and_says_warming(client, redis_client, api_url):
    """A worker preloading music announces loading and warming, not ready, before it takes jobs."""
    from shared.infra import registry

    w = Workers(redis_client)
    _TMP.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SOUNDBOX_PRELOAD_MODELS": '["music"]',
        "SOUNDBOX_PRELOAD_MIN_FREE_GB": "0",
        "SOUNDBOX_WARMUP": "true",  # the suite's default is off
    }
    with open(_TMP / f"worker-warming-{time.time():.0f}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "soundbox.cli", "worker", "--queues", "music"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    w.procs.append(proc)
    key = registry.PREFIX + f"{socket.gethostname()}:{proc.pid}"
    seen: list[tuple[bool, str | None]] = []
    shown: set[str] = set()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            raw = redis_client.get(key)
            if raw is not None:
                beat = json.loads(raw)
                state = next((m["state"] for m in beat.get("models", []) if m["model"] == "music"), None)
                seen.append((bool(beat.get("ready")), state))
                if state == "warming" and len(shown) < 3:
                    shown.add(
                        next(
                            m
                            for m in httpx.get(
                                f"{api_url}/v1/models", headers={"Authorization": client.headers["authorization"]}
                            ).json()["models"]
                            if m["id"] == "music"
                        )["state"]
                    )
                if beat.get("ready"):
                    break
            time.sleep(0.02)
        assert seen and seen[-1] == (True, "ready"), seen[-5:]
        assert (False, "warming") in seen  # announced while warming, and not ready then
        assert not any(ready and state in ("loading", "warming") for ready, state in seen)
        assert shown <= {"warming", "loaded"}  # /v1/models while it warmed (it may have finished by then)
    finally:
        w.stop_all()


def test_models_report_warming_from_a_heartbeat(client, redis_client):
    from shared.infra import registry

    registry.announce(
        redis_client,
        "elsewhere:1",
        {
            "queues": ["magnet"],
            "device": "cuda:1",
            "ready": False,
            "models": [
                {"model": "magnet", "state": "warming", "footprint_bytes": 123, "estimate_bytes": 456, "active": 0}
            ],
        },
    )
    try:
        magnet = {m["id"]: m for m in client.get("/v1/models").json()["models"]}["magnet"]
        assert magnet["state"] == "warming"
        [copy] = [c for c in magnet["workers"] if c["worker"] == "elsewhere:1"]
        assert (copy["device"], copy["state"], copy["footprint_bytes"]) == ("cuda:1", "warming", 123)
    finally:
        registry.withdraw(redis_client, "elsewhere:1")


def test_a_job_fails_clearly_when_memory_never_fits_and_the_worker_carries_on(client, workers):
    proc = workers.start(
        queues="audio",
        env={"SOUNDBOX_MEMORY_LIMIT_GB": "0.001", "SOUNDBOX_MEMORY_WAIT_SECONDS": "1", "SOUNDBOX_PRELOAD_MODELS": "[]"},
    )
    for _ in range(2):
        job = client.post("/v1/generations", json={"model": "audio", "prompt": "a door slams", "duration": 1}).json()
        done = wait_for_job(client, job["id"])
        assert done["status"] == "failed"
        assert "not enough memory to load 'audio': it needs 0.06 GB" in done["error"], done["error"]
        assert "limit 0.00 GB" in done["error"] and "waited 1 s" in done["error"]
    assert proc.poll() is None  # the worker is still serving


@pytest.mark.parametrize(
    "device, message",
    [
        ("cuda:0", "device cuda:0 asked for, but this machine has no usable CUDA GPU"),
        ("cuda:3", "device cuda:3 asked for, but this machine has no usable CUDA GPU"),
        ("tpu", "unknown device 'tpu'"),
    ],
)
def test_worker_refuses_a_device_that_is_not_there(device, message):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is tested on CPU-only machines")
    run = subprocess.run(
        [sys.executable, "-m", "soundbox.cli", "worker", "--device", device],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and message in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
