"""Object store timings: put and get of one 10 s WAV (what a worker stores and the API serves),
on the local folder store and on S3 -- a moto server this script starts on 127.0.0.1, or any
S3-compatible endpoint given with --endpoint (MinIO, ...; credentials from the AWS variables).

    .venv/bin/python bench/storage.py [--seconds 10] [--rate 32000] [--repeat 30] [--json]
    .venv/bin/python bench/storage.py --endpoint http://127.0.0.1:9000 --bucket soundbox-bench

Prints milliseconds per operation (p50 and p95 of --repeat runs after 3 warm-ups) for put, get,
and a 64 KiB Range read (what a player's first request costs), through the same ObjectStore
classes the service uses. moto keeps objects in Python memory, so its figures are an upper
bound on protocol overhead, not a prediction of a real store's disk and network.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from shared.infra.s3store import S3ObjectStore  # noqa: E402
from shared.infra.storage import LocalObjectStore, ObjectStore  # noqa: E402

WARMUP = 3
RANGE_BYTES = 64 * 1024


def wav_clip(seconds: float, rate: int) -> bytes:
    """A 16-bit mono WAV of music-like noise (the format the worker stores)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[str, subprocess.Popen]:
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            return url, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the moto server did not start")


def timed(fn: Callable[[int], object], repeat: int) -> list[float]:
    for i in range(WARMUP):
        fn(-1 - i)
    out = []
    for i in range(repeat):
        started = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def measure(store: ObjectStore, data: bytes, repeat: int) -> dict[str, list[float]]:
    def key(i: int) -> str:
        return f"bench/{i + WARMUP}/audio.wav"

    results = {"put": timed(lambda i: store.put(key(i), data, "audio/wav"), repeat)}
    results["get"] = timed(lambda i: store.get(key(i)), repeat)
    results["range 64 KiB"] = timed(lambda i: b"".join(store.stream(key(i), 0, RANGE_BYTES - 1)), repeat)
    store.delete_prefix("bench/")
    return results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=32000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of a local moto server")
    parser.add_argument("--bucket", default="soundbox-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    data = wav_clip(args.seconds, args.rate)
    rows = []
    with tempfile.TemporaryDirectory(prefix="soundbox-bench-") as tmp:
        for op, values in measure(LocalObjectStore(Path(tmp)), data, args.repeat).items():
            rows.append(("local folder", op, values))

    proc = None
    endpoint = args.endpoint
    if endpoint is None:
        for k, v in (
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            os.environ.setdefault(k, v)
        endpoint, proc = start_moto()
    try:
        store = S3ObjectStore(args.bucket, "bench-run", endpoint_url=endpoint)
        try:
            store.client.create_bucket(Bucket=args.bucket)
        except store.client.exceptions.BucketAlreadyOwnedByYou:
            pass
        label = "S3 (moto, loopback)" if proc else f"S3 ({endpoint})"
        for op, values in measure(store, data, args.repeat).items():
            rows.append((label, op, values))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)

    if args.json:
        print(
            json.dumps(
                [
                    {
                        "backend": b,
                        "op": op,
                        "n": len(v),
                        "p50_ms": round(percentile(v, 50), 3),
                        "p95_ms": round(percentile(v, 95), 3),
                        "bytes": len(data) if op != "range 64 KiB" else RANGE_BYTES,
                    }
                    for b, op, v in rows
                ]
            )
        )
        return
    print(
        f"object store, one {args.seconds:g} s WAV at {args.rate} Hz mono 16-bit ({len(data) / 1e6:.2f} MB), "
        f"{args.repeat} runs after {WARMUP} warm-ups"
    )
    print(f"{'backend':<22} {'operation':<14} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9}")
    for backend, op, values in rows:
        print(
            f"{backend:<22} {op:<14} {percentile(values, 50):>9.2f} {percentile(values, 95):>9.2f} "
            f"{statistics.fmean(values):>9.2f}"
        )


if __name__ == "__main__":
    main()
