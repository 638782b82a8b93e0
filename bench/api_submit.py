"""The submit path against the bare-framework floor, side by side in one run.

    .venv/bin/python bench/api_submit.py [--seconds 15] [--rounds 3] [--connections 64] [--saturation 256]

Starts the floor (/work/shared/reference/apifloor/app.py: FastAPI + asyncpg INSERT + Celery
enqueue, nothing else; its own throwaway venv under var/bench/) and Sound Box's API, each with 2
uvicorn workers, on fresh databases and a Redis database of their own, then runs wrk at
``--connections`` for ``--seconds`` against the floor's /jobs (apply_async) and /jobs_raw (async
LPUSH) and our POST /v1/generations (anonymous, limits raised; validation, auth, limits,
idempotency keys and events all on), all four in turn for ``--rounds`` rounds, and prints
requests/s, p50, p99, non-2xx and socket errors of each run and the median of our per-round
ratio to the floor. Then one saturation line per route class at
``--saturation`` connections (submit, read, liveness, and the floor's bare /hello beside them),
each with a /healthz probe every 50 ms beside it (an orchestrator's liveness check). Target on a 2-core machine: >= 70 % of the
floor's /jobs requests/s, p99 <= 150 ms at 64 connections; at 256 no 500 and no timeout (non-2xx
there are 503 + Retry-After), the probe's p99 <= 50 ms. Needs wrk (apt-get install wrk), PostgreSQL on 127.0.0.1:5432 and
Redis on 127.0.0.1:6379. The machine is shared and noisy: only the ratio in one run means much.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FLOOR = Path(os.environ.get("SOUNDBOX_APIFLOOR", "/work/shared/reference/apifloor"))
PG = "postgresql://postgres@127.0.0.1:5432"
BODY = '{"model":"music","prompt":"a calm piano melody with soft strings, 90 bpm","duration":2.0,"priority":5}'
FLOOR_BODY = '{"model":"medium","prompt":"a calm piano melody with soft strings, 90 bpm","duration":10.0,"priority":5}'
BIG = 10**9
TIERS = {
    t: {"max_duration": 30, "max_pending": BIG, "jobs_per_hour": BIG, "priority_min": 0, "priority_max": 9}
    for t in ("free", "supporter", "premium", "creator")
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(*sql: str, db: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(f"{PG}/{db}", autocommit=True) as conn:
        for statement in sql:
            conn.execute(statement)


def claim_redis_db():
    import redis

    for n in range(15, 0, -1):
        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{n}")
        if client.set("soundbox:test-run", f"bench-{os.getpid()}", nx=True, ex=3600):
            return n, client
    raise SystemExit("no free Redis database (1-15)")


def floor_python() -> Path:
    venv = ROOT / "var" / "bench" / "floor-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "fastapi",
                "uvicorn[standard]",
                "asyncpg",
                "orjson",
                "redis",
                "celery",
                "packaging",
            ],
            check=True,
        )
    return python


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready")


def wrk(url: str, connections: int, seconds: int, script: Path | None, timeout: int = 2) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "requests": int(total.group(1)) if total else 0,
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()))) if sock else {},
    }


class Probe:
    """A liveness probe beside a load run, as an orchestrator would send it: GET /healthz every
    ``interval`` seconds on its own connection; ``stop`` returns the latencies (ms; a timeout
    or an error counts as ``timeout`` seconds)."""

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 2.0) -> None:
        self.url, self.interval, self.timeout = url, interval, timeout
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.wait(self.interval):
                started = time.perf_counter()
                try:
                    client.get(self.url).raise_for_status()
                    self.latencies.append((time.perf_counter() - started) * 1000)
                except httpx.HTTPError:
                    self.latencies.append(self.timeout * 1000)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        ordered = sorted(self.latencies) or [0.0]
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {"probes": len(self.latencies), "p50": pick(0.50), "p99": pick(0.99), "max": ordered[-1]}


def line(name: str, r: dict) -> str:
    errs = {k: v for k, v in r["socket_errors"].items() if v}
    text = (
        f"{name:<44} {r['rps']:>8.0f} req/s  p50 {r['p50'] or 0:>7.1f} ms  p99 {r['p99'] or 0:>7.1f} ms  "
        f"non-2xx {r['non2xx']:>6}  socket errors {errs or 0}"
    )
    if "probe" in r:
        ok = r["rps"] * (1 - r["non2xx"] / r["requests"]) if r["requests"] else 0.0
        p = r["probe"]
        text += (
            f"\n{'':<44} {ok:>8.0f} 2xx/s; /healthz probe beside it: {p['probes']} probes, "
            f"p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms, max {p['max']:.1f} ms"
        )
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3, help="floor and ours in turn, this many times (medians)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--saturation", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="soundbox-bench-"))
    post = work / "post.lua"
    post.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{BODY}\'\n')
    floor_post = work / "floor.lua"
    floor_post.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{FLOOR_BODY}\'\n'
    )
    hello = work / "hello.lua"
    hello.write_text('wrk.method = "POST"\n')
    # every request a fresh Idempotency-Key: the key is recorded with the job, as a careful client sends it
    idem = work / "idem.lua"
    idem.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{BODY}\'\n'
        "counter = 0\nrequest = function()\n  counter = counter + 1\n"
        '  wrk.headers["Idempotency-Key"] = string.format("bench-%d-%d-%d", os.time(), math.random(1e9), counter)\n'
        "  return wrk.format()\nend\n"
    )

    n, claim = claim_redis_db()
    floor_redis, ours_redis = f"redis://127.0.0.1:6379/{n}", f"redis://127.0.0.1:6379/{n}"
    procs: list[subprocess.Popen] = []
    try:
        psql(
            "DROP DATABASE IF EXISTS soundbox_bench_floor WITH (FORCE)",
            "CREATE DATABASE soundbox_bench_floor",
            "DROP DATABASE IF EXISTS soundbox_bench WITH (FORCE)",
            "CREATE DATABASE soundbox_bench",
        )
        psql(
            "CREATE TABLE jobs (id uuid PRIMARY KEY, model text NOT NULL, prompt text NOT NULL, duration double "
            "precision NOT NULL, priority int NOT NULL, status text NOT NULL, created_at timestamptz DEFAULT now())",
            db="soundbox_bench_floor",
        )
        ours_db = "postgresql+psycopg://postgres@127.0.0.1:5432/soundbox_bench"
        sys.path.insert(0, str(ROOT))
        from shared.infra.migrate import upgrade_head

        upgrade_head(ours_db)

        floor_port, ours_port = free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [
                    str(floor_python()),
                    "-m",
                    "uvicorn",
                    "app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(floor_port),
                    "--workers",
                    "2",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=FLOOR,
                start_new_session=True,
                env={**os.environ, "PG_DSN": f"{PG}/soundbox_bench_floor", "REDIS_URL": floor_redis},
                stdout=open(work / "floor.log", "wb"),
                stderr=subprocess.STDOUT,
            )
        )
        env = {
            **os.environ,
            "SOUNDBOX_DATABASE_URL": ours_db,
            "SOUNDBOX_REDIS_URL": ours_redis,
            "SOUNDBOX_CATALOG": "tiny",
            "SOUNDBOX_ALLOW_ANONYMOUS": "true",
            "SOUNDBOX_TIERS": json.dumps(TIERS),
            "SOUNDBOX_MAX_QUEUED_JOBS": str(BIG),
            "SOUNDBOX_RATE_LIMITS": json.dumps({c: [BIG, 60] for c in ("generate", "read", "speech", "admin")}),
            "SOUNDBOX_STORAGE_DIR": str(work / "storage"),
            "SOUNDBOX_MODELS_DIR": str(ROOT / "var" / "test-models"),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "soundbox.cli", "api", "--port", str(ours_port), "--workers", "2"],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=open(work / "api.log", "wb"),
                stderr=subprocess.STDOUT,
            )
        )
        floor, ours = f"http://127.0.0.1:{floor_port}", f"http://127.0.0.1:{ours_port}"
        wait_ready(floor + "/docs", procs[0])
        wait_ready(ours + "/healthz", procs[1])

        results: dict[str, dict] = {}
        c, s = args.connections, args.seconds
        script: Path | None
        routes = [
            ("floor POST /jobs (INSERT + apply_async)", floor + "/jobs", floor_post),
            ("floor POST /jobs_raw (INSERT + async LPUSH)", floor + "/jobs_raw", floor_post),
            ("ours POST /v1/generations", ours + "/v1/generations", post),
            ("ours POST /v1/generations + Idempotency-Key", ours + "/v1/generations", idem),
        ]
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in routes}
        ratios = []
        for n in range(1, args.rounds + 1):  # in turn, so a slow spell of the machine hits both sides
            print(f"round {n} of {args.rounds}, {c} connections, {s} s each:", flush=True)
            for name, url, script in routes:
                if n == 1:
                    wrk(url, c, 5, script)  # warm-up
                runs[name].append(wrk(url, c, s, script))
                print(line(name, runs[name][-1]), flush=True)
            floor_rps = runs[routes[0][0]][-1]["rps"]
            ratios.append(runs[routes[2][0]][-1]["rps"] / floor_rps if floor_rps else 0.0)
        for name, _, _ in routes:  # the round with the median requests/s stands for the route
            results[name] = sorted(runs[name], key=lambda r: r["rps"])[len(runs[name]) // 2]
        ratio = statistics.median(ratios)
        p99 = statistics.median(r["p99"] or 0 for r in runs[routes[2][0]])
        print(
            f"ratio ours / floor /jobs, median of {len(ratios)} rounds: {ratio:.0%} "
            f"({', '.join(f'{r:.0%}' for r in ratios)}; target >= 70 %); ours p99, median: {p99:.0f} ms "
            f"(target <= 150 ms) at {c} connections"
        )

        if args.saturation:  # 0: skip the saturation runs
            job = httpx.post(
                ours + "/v1/generations", content=BODY, headers={"content-type": "application/json"}, timeout=30
            ).json()["id"]
            print(
                f"saturation at {args.saturation} connections, 10 s each (non-2xx should all be 503 + Retry-After; "
                "target: /healthz probe p99 <= 50 ms):"
            )
            for name, url, script in [
                ("submit POST /v1/generations", ours + "/v1/generations", post),
                ("read GET /v1/jobs/{id}", f"{ours}/v1/jobs/{job}", None),
                ("liveness GET /healthz", ours + "/healthz", None),
                ("floor POST /hello (the framework alone)", floor + "/hello", hello),
            ]:
                probe = None if url.startswith(floor) else Probe(ours + "/healthz")
                results[f"saturation {name}"] = r = wrk(url, args.saturation, 10, script)
                if probe is not None:
                    r["probe"] = probe.stop()
                print(line(name, r), flush=True)
        log_text = (work / "api.log").read_text(errors="replace")
        served_500 = len(re.findall(r'"status": ?5\d\d', log_text))  # shed 503s never reach the request log
        print(f"5xx answered by the routes themselves (API log, all runs): {served_500}")
        results["route_5xx"] = {"count": served_500}
        if args.json:
            print(json.dumps({"ratio": ratio, **results}, indent=2))
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        for key in claim.scan_iter("*"):
            claim.delete(key)


if __name__ == "__main__":
    main()
