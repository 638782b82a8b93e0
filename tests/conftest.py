"""Test stack: a fresh PostgreSQL database migrated with Alembic, a private Redis database,
and real API / worker processes started on demand. Services must be running (scripts/test.sh
starts them); nothing here is faked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.gettempdir()) / f"soundbox-tests-{os.getpid()}"  # logs and the object store


def _claim_redis_db() -> int:
    """Take a Redis database (1-15) no other test run on this machine is using, so parallel
    runs (several checkouts, CI beside a developer) never share queues or a PostgreSQL database."""
    import atexit

    import redis

    def alive(holder: bytes | None) -> bool:  # a run killed before its atexit left its claim behind
        # "<pid>" from a test run, "bench-<pid>" from bench/ (which empties the whole database
        # when it ends: taking its database while it runs would lose this run's claim then)
        try:
            pid = int((holder or b"0").rsplit(b"-", 1)[-1])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return pid > 0

    for n in range(15, 0, -1):
        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{n}")
        holder = client.get("soundbox:test-run")
        if holder is not None and not alive(holder):
            client.delete("soundbox:test-run")
        if client.set("soundbox:test-run", os.getpid(), nx=True, ex=3 * 3600):
            atexit.register(lambda c=client: c.delete("soundbox:test-run"))
            return n
    raise RuntimeError("all Redis databases 1-15 are taken by other test runs")


_DB_INDEX = _claim_redis_db()
TEST_DB = f"soundbox_test_{_DB_INDEX}"
TEST_ENV = {
    "SOUNDBOX_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{TEST_DB}",
    "SOUNDBOX_REDIS_URL": f"redis://127.0.0.1:6379/{_DB_INDEX}",
    "SOUNDBOX_STORAGE_DIR": str(_TMP / "storage"),
    "SOUNDBOX_STORAGE_URL": "",  # the local folder above; tests/s3 start their S3 processes with their own
    # Tiny checkpoints and numba's cache outlive a run, so reruns start fast.
    "SOUNDBOX_MODELS_DIR": str(ROOT / "var" / "test-models"),
    "SOUNDBOX_NUMBA_CACHE_DIR": str(ROOT / "var" / "cache" / "numba"),
    "NUMBA_CACHE_DIR": str(ROOT / "var" / "cache" / "numba"),
    "SOUNDBOX_CATALOG": "tiny",
    # Workers take jobs without first generating their models' warm-up clips (2 s and 12 s of tiny
    # MusicGen/AudioGen: 5-30 s a model at every worker start); the tests of warm-up turn it on.
    "SOUNDBOX_WARMUP": "false",
    # One compute thread per process: the suite runs several processes on few cores, and torch's
    # OpenMP threads (and OpenBLAS's) spin against each other there; two tiny-MusicGen warm-ups side
    # by side took 30 s of CPU each with the default threads and 5.5 s with one.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",  # worker and API logs reach their files as they happen
    # Short timers so recovery after a killed worker happens within a test.
    "SOUNDBOX_JOB_LEASE_SECONDS": "6",
    "SOUNDBOX_BROKER_VISIBILITY_TIMEOUT": "10",
    "SOUNDBOX_RECOVERY_INTERVAL": "2",
    # Generous rate limits for the shared API process; tests of the limits start their own.
    "SOUNDBOX_RATE_LIMITS": '{"generate": [1000, 60], "read": [100000, 60], "speech": [1000, 60], "admin": [1000, 60]}',
    # Webhook receivers in tests listen on 127.0.0.1 only; nothing else non-public is admitted.
    "SOUNDBOX_WEBHOOK_ALLOWLIST": "127.0.0.1",
}
os.environ.update(TEST_ENV)  # before anything reads settings


def die_with_pytest() -> None:
    """``preexec_fn`` of every process a test starts: the kernel kills it when this pytest process
    dies (PR_SET_PDEATHSIG), so a run killed by a timeout leaves no worker consuming from the Redis
    database the next run claims."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def database() -> str:
    import psycopg

    from shared.infra.migrate import upgrade_head

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    upgrade_head(TEST_ENV["SOUNDBOX_DATABASE_URL"])
    return TEST_ENV["SOUNDBOX_DATABASE_URL"]


@pytest.fixture(scope="session")
def redis_client():
    import redis

    client = redis.Redis.from_url(TEST_ENV["SOUNDBOX_REDIS_URL"])
    for key in client.scan_iter("*"):
        if key != b"soundbox:test-run":
            client.delete(key)
    yield client


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def start_api(
    env: dict[str, str] | None = None, ready_path: str = "/readyz", timeout: float = 30
) -> tuple[str, subprocess.Popen]:
    """A real API process on a free port (with extra settings when given), waited for on
    ``ready_path`` (``/healthz`` for one that may start while a dependency is down)."""
    port = free_port()
    _TMP.mkdir(parents=True, exist_ok=True)
    log = open(_TMP / f"api-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "soundbox.cli", "api", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        preexec_fn=die_with_pytest,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + ready_path, proc, timeout)
    return url, proc


@pytest.fixture(scope="session")
def api_url(database, redis_client) -> str:
    url, proc = start_api()
    yield url
    proc.terminate()
    proc.wait(10)


def make_key(name: str = "tester", tier: str = "creator", admin: bool = False) -> str:
    """A real API key, created the way `soundbox keys create` does."""
    from shared.domain.accounts import create_account_with_key
    from shared.infra.db import session_scope

    with session_scope() as session:
        return create_account_with_key(session, name, tier, admin).secret


@pytest.fixture(scope="session")
def api_key(database) -> str:
    return make_key("main test account", "creator")


@pytest.fixture
def client(api_url, api_key):
    import httpx

    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"}) as c:
        yield c


class Workers:
    """Starts real `soundbox worker` processes and makes sure they are gone after the test."""

    def __init__(self, redis_client):
        self.redis = redis_client
        self.procs: list[subprocess.Popen] = []

    def start(
        self,
        queues: str = "music,audio,magnet,voice",
        concurrency: int = 1,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        from shared.infra import registry

        log = open(_TMP / f"worker-{len(self.procs)}-{time.time():.0f}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "soundbox.cli", "worker", "--queues", queues, "--concurrency", str(concurrency)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=die_with_pytest,
        )
        self.procs.append(proc)
        name = f"{socket.gethostname()}:{proc.pid}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; log: {log.name}")
            entry = self.redis.get(registry.PREFIX + name)
            if entry is not None and json.loads(entry).get("ready"):  # taking jobs, preloads warmed up
                return proc
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready; log: {log.name}")

    def start_webhooks(
        self, env: dict[str, str] | None = None, concurrency: int = 4, timeout: float = 60
    ) -> subprocess.Popen:
        """A `soundbox webhooks` delivery worker, ready when it announces itself."""
        from shared.infra import registry

        log = open(_TMP / f"webhooks-{len(self.procs)}-{time.time():.0f}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "soundbox.cli", "webhooks", "--concurrency", str(concurrency)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=die_with_pytest,
        )
        self.procs.append(proc)
        key = registry.PREFIX + f"{socket.gethostname()}:{proc.pid}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"webhook worker exited with {proc.returncode}; log: {log.name}")
            if self.redis.exists(key):
                return proc
            time.sleep(0.2)
        raise RuntimeError(f"webhook worker not ready; log: {log.name}")

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def workers(redis_client, api_url):
    w = Workers(redis_client)
    yield w
    w.stop_all()


@pytest.fixture(scope="module")
def module_worker(redis_client, api_url):
    w = Workers(redis_client)
    w.start()
    yield w
    w.stop_all()


def wait_for_job(client, job_id: str, timeout: float = 120, until=("succeeded", "failed", "canceled")) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s (logs in {_TMP})")


@pytest.fixture
def idle_queues(redis_client, api_url):
    """No worker runs and no message waits when the test starts."""
    from shared.infra import registry

    deadline = time.monotonic() + 30
    while registry.workers(redis_client) and time.monotonic() < deadline:
        time.sleep(0.5)  # a previous module's worker announces until its TTL ends
    for key in list(redis_client.scan_iter("*")):
        if not key.startswith(registry.PREFIX.encode()) and key != b"soundbox:test-run":
            redis_client.delete(key)
    from sqlalchemy import text

    from shared.infra.db import session_scope

    with session_scope() as s:  # jobs earlier tests left waiting (or running on a worker since stopped)
        s.exec(  # would be taken by the batch loop or recovered by the next worker's lease sweep
            text("UPDATE jobs SET status = 'canceled', error = 'test cleanup' WHERE status IN ('queued', 'running')")
        )


def submit(client, **fields) -> str:
    body = {"model": "music", "prompt": "test tone for the queue", "duration": 1, **fields}
    resp = client.post("/v1/generations", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def db_job(job_id: str):
    from shared.domain.models import Job
    from shared.infra.db import session_scope

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


class Receiver:
    """A webhook receiver process (tests/webhook_receiver.py) on 127.0.0.1 answering by its plan
    ({path: [{"status": 500}, {"status": 200}], ...}); every request it got is in its log."""

    def __init__(self, plan: dict, log: Path):
        import json

        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "webhook_receiver.py"),
                "--log",
                str(log),
                "--plan",
                json.dumps(plan),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the webhook receiver did not start (exit code {self.proc.poll()})")
        self.port = int(line.split()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[dict]:
        import json

        if not self.log.exists():
            return []
        got = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in got if path is None or r["path"] == path]

    def wait_for(self, path: str, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests(path)
            if len(got) >= count:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{path} got {len(self.requests(path))} requests, expected {count}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def receiver(tmp_path):
    """``receiver(plan)`` starts a receiver process; all are stopped after the test."""
    started: list[Receiver] = []

    def start(plan: dict | None = None) -> Receiver:
        r = Receiver(plan or {}, tmp_path / f"receiver-{len(started)}.jsonl")
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()
