"""No job left behind: a Redis of the test's own (a free loopback port, its own directory; the
machine's Redis is never touched) crashes with jobs queued at every priority and comes back
with persistence (the messages survive) or without (the reconciler sends them again). Every job
then succeeds exactly once: one result, none failed, none stuck."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import Workers, free_port, make_key, start_api


class OwnRedis:
    def __init__(self, directory: Path, persistent: bool) -> None:
        self.port, self.dir, self.persistent = free_port(), directory, persistent
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("own redis-server did not start")

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _outcome(job_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Each job's status and how many results (sounds) it has."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from shared.domain.models import Job, Sound
    from shared.infra.db import session_scope

    ids = [__import__("uuid").UUID(j) for j in job_ids]
    with session_scope() as s:
        status = dict(s.exec(select(Job.id, Job.status).where(col(Job.id).in_(ids))).all())
        sounds = dict(
            s.exec(select(Sound.job_id, func.count()).where(col(Sound.job_id).in_(ids)).group_by(Sound.job_id)).all()
        )
    return {str(i): (str(status[i]), sounds.get(i, 0)) for i in ids}


@pytest.mark.parametrize("persistent", [False, True], ids=["no-persistence", "appendonly"])
def test_redis_crash_with_jobs_at_every_priority(database, tmp_path, persistent):
    own = OwnRedis(tmp_path, persistent)
    env = {
        "SOUNDBOX_REDIS_URL": own.url,
        "SOUNDBOX_RECONCILE_GRACE_SECONDS": "3",
        "SOUNDBOX_AGING_SECONDS": "3600",
        "SOUNDBOX_MAX_ATTEMPTS": "1",
    }  # one attempt: counting, not quality
    url, api = start_api(env)
    workers = Workers(redis.Redis.from_url(own.url))
    try:
        key = make_key(f"redis crash {persistent}", "creator")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            job_ids = []
            for priority in range(10):
                resp = c.post(
                    "/v1/generations",
                    json={"model": "music", "prompt": f"crash test {priority}", "duration": 1, "priority": priority},
                )
                assert resp.status_code == 202, resp.text
                job_ids.append(resp.json()["id"])
        before = sum(redis.Redis.from_url(own.url).llen(k) for k in ["music", *(f"music:{n}" for n in range(1, 10))])
        assert before == 10  # every priority has its message waiting
        own.crash()
        own.start()
        after = sum(redis.Redis.from_url(own.url).llen(k) for k in ["music", *(f"music:{n}" for n in range(1, 10))])
        assert after == (10 if persistent else 0)
        workers.start(queues="music", env=env, timeout=300)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            outcome = _outcome(job_ids)
            if all(status in ("succeeded", "failed", "canceled") for status, _ in outcome.values()):
                break
            time.sleep(1)
        outcome = _outcome(job_ids)
        succeeded = [j for j, (status, n) in outcome.items() if status == "succeeded" and n == 1]
        failed = [j for j, (status, _) in outcome.items() if status == "failed"]
        stuck = [j for j, (status, _) in outcome.items() if status in ("queued", "running")]
        print(f"persistent={persistent}: succeeded once {len(succeeded)}, failed {len(failed)}, stuck {len(stuck)}")
        assert (len(succeeded), failed, stuck) == (10, [], []), outcome
    finally:
        workers.stop_all()
        api.terminate()
        api.wait(10)
        own.stop()


def test_worker_sigkilled_mid_job_repeatedly(client, workers, idle_queues):
    """Three workers in a row are SIGKILLed while a job runs; the fourth finishes the rest. Every
    job ends succeeded exactly once (one result), none failed, none stuck."""
    from tests.conftest import submit, wait_running

    # max_attempts also caps deliveries: 4 lets one job survive all three kills
    env = {"SOUNDBOX_MAX_ATTEMPTS": "4", "SOUNDBOX_RECONCILE_GRACE_SECONDS": "3"}
    job_ids = [submit(client, duration=4, priority=p) for p in (9, 0)]
    for _ in range(3):
        worker = workers.start(queues="music", env=env, timeout=300)
        running = None
        deadline = time.monotonic() + 300
        while running is None and time.monotonic() < deadline:  # whichever job it took
            for job_id in job_ids:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] == "running" and job["progress"] > 0:
                    running = job_id
                    break
            time.sleep(0.1)
        assert running is not None, "no job ran"
        wait_running(client, running)
        workers.kill(worker)  # SIGKILL mid-job: no ack, no cleanup
    workers.start(queues="music", env=env, timeout=300)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if all(status in ("succeeded", "failed", "canceled") for status, _ in _outcome(job_ids).values()):
            break
        time.sleep(1)
    outcome = _outcome(job_ids)
    succeeded = [j for j, (status, n) in outcome.items() if status == "succeeded" and n == 1]
    stuck = [j for j, (status, _) in outcome.items() if status in ("queued", "running")]
    print(f"after 3 SIGKILLs: succeeded once {len(succeeded)}, stuck {len(stuck)}, all {outcome}")
    assert len(succeeded) == len(job_ids) and not stuck, outcome
