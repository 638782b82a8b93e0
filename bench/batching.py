"""Dynamic batching through the real service: API + worker + PostgreSQL + Redis, tiny catalog.

    .venv/bin/python -m bench.batching [--counts 1,4,16,64] [--caps 1,16] [--duration 10] [--device cpu]

For each batch cap (``SOUNDBOX_BATCH_MAX``; ``--caps 1,16,1,16`` alternates them, so a load that
drifts during the run weighs on both) it starts one worker process serving music, then for
each N sends N concurrent ``POST /v1/generations`` of ``--duration`` s music (distinct seeds)
and waits for all of them. Prints per (cap, N): clips per minute (N over the time from the first
submit to the last finish), p50 and p95 latency (submit to finish, from the job rows), the
largest batch seen, and the worker's peak resident memory during the round. Then the two ratios
the batching targets are about, from the same run: throughput at N=16, cap 16 vs cap 1 (target
>= 2.5x on a 2-core CPU) and a lone request's latency, cap 16 vs cap 1 (target <= 1.1x; median of
``--lone-repeats``). Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (`soundbox
services`). The machine is shared and noisy: compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

from bench.api_submit import claim_redis_db, free_port, psql, wait_ready

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
BIG = 10**9


def service_env(db: str, redis_db: int, storage: Path) -> dict[str, str]:
    tiers = {
        t: {"max_duration": 120, "max_pending": BIG, "jobs_per_hour": BIG, "priority_min": 0, "priority_max": 9}
        for t in ("free", "supporter", "premium", "creator")
    }
    return {
        **os.environ,
        "SOUNDBOX_DATABASE_URL": f"{PG}/{db}",
        "SOUNDBOX_REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "SOUNDBOX_STORAGE_DIR": str(storage),
        "SOUNDBOX_STORAGE_URL": "",
        "SOUNDBOX_CATALOG": "tiny",
        "SOUNDBOX_MODELS_DIR": str(ROOT / "var" / "test-models"),
        "SOUNDBOX_ALLOW_ANONYMOUS": "true",
        "SOUNDBOX_TIERS": json.dumps(tiers),
        "SOUNDBOX_MAX_QUEUED_JOBS": "100000",
        "SOUNDBOX_API_MAX_QUEUED": "1000",
        "SOUNDBOX_RATE_LIMITS": json.dumps({k: [BIG, 60] for k in ("generate", "read", "speech", "admin")}),
        "SOUNDBOX_PRELOAD_MODELS": '["music"]',
        "PYTHONUNBUFFERED": "1",
    }


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "soundbox.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_worker_ready(redis_client, proc: subprocess.Popen, timeout: float = 300) -> None:
    from shared.infra import registry

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode}")
        for entry in registry.workers(redis_client):
            if entry.get("ready"):
                return
        time.sleep(0.3)
    raise SystemExit("worker not ready")


class PeakMemory:
    """The largest resident set of a process tree, sampled every 0.1 s."""

    def __init__(self, pid: int):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except Exception:
                pass

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def round_trip(url: str, n: int, duration: float, seed0: int) -> dict:
    """N concurrent submits; wait for all; the jobs' own timestamps give the latencies."""
    body = {"model": "music", "prompt": "steady lo-fi beat with warm keys", "duration": duration}
    with httpx.Client(base_url=url, timeout=60) as client:

        def one(i: int) -> str:
            resp = client.post("/v1/generations", json={**body, "seed": seed0 + i})
            resp.raise_for_status()
            return resp.json()["id"]

        with ThreadPoolExecutor(min(n, 32)) as pool:
            ids = list(pool.map(one, range(n)))
        pending, done = set(ids), {}
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed", "canceled"):
                    done[job_id] = job
                    pending.discard(job_id)
            time.sleep(0.1)
    if pending:
        raise SystemExit(f"{len(pending)} jobs unfinished after 600 s")
    failed = [j["error"] for j in done.values() if j["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"jobs failed: {failed[:3]}")

    def ts(j: dict, k: str) -> float:
        return datetime.fromisoformat(j[k]).timestamp()

    jobs = list(done.values())
    latencies = sorted(ts(j, "finished_at") - ts(j, "created_at") for j in jobs)
    span = max(ts(j, "finished_at") for j in jobs) - min(ts(j, "created_at") for j in jobs)
    batches = [a.get("batch") or 1 for j in jobs for a in j["attempt_history"]]
    return {
        "clips_per_min": 60 * n / span,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "max_batch": max(batches),
        "attempts": len(batches),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1,4,16,64")
    ap.add_argument("--caps", default="1,16")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lone-repeats", type=int, default=5)
    ap.add_argument(
        "--attempts",
        type=int,
        default=1,
        help="SOUNDBOX_MAX_ATTEMPTS (random-weight noise never passes the quality check: with 3, every job "
        "is generated three times)",
    )
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    caps = [int(x) for x in args.caps.split(",")]  # a cap may come twice (1,16,1,16): drift evens out

    from shared.infra.migrate import upgrade_head

    redis_db, redis_client = claim_redis_db()
    db = f"soundbox_bench_batching_{redis_db}"
    psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', f'CREATE DATABASE "{db}"')
    upgrade_head(f"{PG}/{db}")
    for key in redis_client.scan_iter("*"):
        if key != b"soundbox:test-run":
            redis_client.delete(key)
    tmp = Path(tempfile.mkdtemp(prefix="soundbox-bench-batching-"))
    env = service_env(db, redis_db, tmp / "storage")
    port = free_port()
    api = start(["api", "--port", str(port), "--workers", "1"], env, tmp / "api.log")
    url = f"http://127.0.0.1:{port}"
    results: dict[tuple[int, int], dict] = {}
    lone: dict[int, list[float]] = {}
    try:
        wait_ready(url + "/healthz", api)
        for cap in caps:
            worker_env = {
                **env,
                "SOUNDBOX_BATCH_MAX": str(cap),
                "SOUNDBOX_DEVICE": args.device,
                "SOUNDBOX_MAX_ATTEMPTS": str(args.attempts),
            }
            worker = start(["worker", "--queues", "music"], worker_env, tmp / f"worker-cap{cap}.log")
            try:
                wait_worker_ready(redis_client, worker)
                round_trip(url, 1, args.duration, 0)  # the first job after start-up is not timed
                lone.setdefault(cap, []).extend(
                    round_trip(url, 1, args.duration, 100 + i)["p50"] for i in range(args.lone_repeats)
                )
                for n in counts:
                    with PeakMemory(worker.pid) as mem:
                        r = round_trip(url, n, args.duration, 1000 * n)
                    r["peak_mb"] = mem.peak / 1e6
                    results[(cap, n)] = r
                    print(
                        f"cap {cap:>3}  N {n:>3}  {r['clips_per_min']:>7.1f} clips/min  p50 {r['p50']:>6.2f} s  "
                        f"p95 {r['p95']:>6.2f} s  max batch {r['max_batch']:>3}  attempts {r['attempts']:>3}  "
                        f"peak {r['peak_mb']:>6.0f} MB",
                        flush=True,
                    )
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(30)
        redis_client.delete("soundbox:test-run")
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    print(f"\n{args.duration:g} s music, tiny catalog, device {args.device}; logs in {tmp}")
    print("| cap | N | clips/min | p50 s | p95 s | max batch | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for (cap, n), r in sorted(results.items()):
        print(
            f"| {cap} | {n} | {r['clips_per_min']:.1f} | {r['p50']:.2f} | {r['p95']:.2f} | "
            f"{r['max_batch']} | {r['peak_mb']:.0f} |"
        )
    lo, hi = min(caps), max(caps)
    if (lo, 16) in results and (hi, 16) in results:
        ratio = results[(hi, 16)]["clips_per_min"] / results[(lo, 16)]["clips_per_min"]
        print(f"16 concurrent: cap {hi} gives {ratio:.2f}x the throughput of cap {lo} (target >= 2.5x)")
    if lo in lone and hi in lone:
        a, b = statistics.median(lone[hi]), statistics.median(lone[lo])
        print(
            f"lone request (median of {len(lone[hi])} and {len(lone[lo])}): {a:.2f} s at cap {hi} vs {b:.2f} s "
            f"at cap {lo}: {a / b:.2f}x (target <= 1.1x)"
        )


if __name__ == "__main__":
    main()
