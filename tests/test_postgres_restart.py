"""PostgreSQL restarts under a light submit load: a PostgreSQL instance of the test's own (initdb
into a temporary directory, a free loopback port; the machine's server is never touched), an API
and a worker pointed at it and at a Redis of the test's own. Submits during the outage are
answered 503 with Retry-After, never 500; every job accepted (202) ends succeeded exactly once:
none lost, none stuck."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import Workers, free_port, start_api
from tests.test_no_job_left_behind import OwnRedis

BINDIR = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
pytestmark = pytest.mark.skipif(
    BINDIR is None or not Path(f"{BINDIR}/initdb").exists() or not Path(f"{BINDIR}/pg_ctl").exists(),
    reason="needs PostgreSQL's server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin",
)
BIG = 10**6
TIERS = {
    t: {"max_duration": 30, "max_pending": BIG, "jobs_per_hour": BIG, "priority_min": 0, "priority_max": 9}
    for t in ("free", "supporter", "premium", "creator")
}


class OwnPostgres:
    """A throwaway PostgreSQL cluster on a free loopback port (run as the postgres user when root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="soundbox-pg-"))
        self.data = self.dir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, f"{BINDIR}/{tool}", *args], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


def _outcome_at(port: int, job_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Each job's status and how many results (sounds) it has, in the test's own PostgreSQL."""
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT j.id::text, j.status::text, (SELECT count(*) FROM sounds s WHERE s.job_id = j.id) "
            "FROM jobs j WHERE j.id = ANY(%s::uuid[])",
            (job_ids,),
        ).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def test_postgres_restart_under_submit_load(database, tmp_path):
    from shared.infra.migrate import upgrade_head

    pg = OwnPostgres()
    own = OwnRedis(tmp_path, persistent=True)
    env = {
        "SOUNDBOX_DATABASE_URL": pg.url,
        "SOUNDBOX_REDIS_URL": own.url,
        "SOUNDBOX_ALLOW_ANONYMOUS": "true",
        "SOUNDBOX_TIERS": __import__("json").dumps(TIERS),
        "SOUNDBOX_RECONCILE_GRACE_SECONDS": "3",
        "SOUNDBOX_AGING_SECONDS": "3600",
        # (the default 3 attempts: a job the outage caught mid-run is delivered again, and the
        # deliveries a job may take are bounded by the attempts)
        "SOUNDBOX_DB_CONNECT_TIMEOUT": "1",
        "SOUNDBOX_JOB_LEASE_SECONDS": "10",
        "SOUNDBOX_RECOVERY_INTERVAL": "2",
    }
    workers = Workers(redis.Redis.from_url(own.url))
    api = None
    try:
        upgrade_head(pg.url)
        url, api = start_api(env)
        workers.start(queues="music", env=env, timeout=300)
        accepted: list[str] = []
        refused: list[httpx.Response] = []
        wrong: list[str] = []
        stop = threading.Event()

        def load() -> None:  # about five submits a second, one at a time
            with httpx.Client(base_url=url, timeout=30) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    body = {"model": "music", "prompt": f"restart test {n}", "duration": 1}
                    try:
                        resp = c.post("/v1/generations", json=body)
                    except httpx.HTTPError as exc:
                        wrong.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if resp.status_code == 202:
                        accepted.append(resp.json()["id"])
                    elif resp.status_code == 503 and int(resp.headers.get("retry-after", "0")) > 0:
                        refused.append(resp)
                    else:
                        wrong.append(f"{resp.status_code} {resp.text[:300]}")
                    time.sleep(0.2)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            time.sleep(3)
            pg.stop("fast")  # every connection dropped, new ones refused
            time.sleep(3)
            pg.start()
            time.sleep(4)
        finally:
            stop.set()
            loader.join(60)
        assert not wrong, wrong[:5]  # never a 500, never a hang
        assert refused, "the outage was not seen: no submit got 503"
        assert all(r.json()["status"] == 503 for r in refused)
        assert len(accepted) >= 10

        deadline = time.monotonic() + 300
        outcome: dict[str, tuple[str, int]] = {}
        while time.monotonic() < deadline:
            outcome = _outcome_at(pg.port, accepted)
            if len(outcome) == len(accepted) and all(
                s in ("succeeded", "failed", "canceled") for s, _ in outcome.values()
            ):
                break
            time.sleep(1)
        lost = [j for j in accepted if j not in outcome]
        succeeded = [j for j, (s, n) in outcome.items() if s == "succeeded" and n == 1]
        failed = [j for j, (s, _) in outcome.items() if s == "failed"]
        stuck = [j for j, (s, _) in outcome.items() if s in ("queued", "running")]
        print(
            f"accepted {len(accepted)}, refused 503 {len(refused)}: succeeded once {len(succeeded)}, "
            f"failed {len(failed)}, stuck {len(stuck)}, lost {len(lost)}"
        )
        assert (lost, stuck, failed) == ([], [], []), outcome
        assert len(succeeded) == len(accepted)
    finally:
        workers.stop_all()
        if api is not None:
            api.terminate()
            api.wait(10)
        own.stop()
        pg.remove()
