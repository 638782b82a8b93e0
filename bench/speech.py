"""Speech benchmark: real-time factor (RTF), time to first byte (TTFB) and throughput of
``POST /v1/audio/speech`` on this machine.

    .venv/bin/python bench/speech.py                   # starts its own API (local services, migrated)
    .venv/bin/python bench/speech.py --url http://127.0.0.1:8000 --api-key sk-...

Measures, for a two-sentence text and a 5000-character text: TTFB (request sent -> first body
bytes, which hold the WAV header and the first sentence) and RTF (whole response time / audio
duration); the same texts synthesized in-process without HTTP; then requests per second with 8
concurrent clients speaking the two-sentence text. Targets: RTF <= 0.1, TTFB <= 300 ms (short text).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHORT = "Hello from Sound Box. This sentence is spoken by Piper."
LONG = (
    "The quick brown fox jumps over the lazy dog near the quiet river bank. "
    "Morning light spreads across the valley, and the town slowly wakes. "
) * 40
LONG = LONG[:5000].rsplit(" ", 1)[0] + "."
WAV_HEADER = 44


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(workers: int | None) -> tuple[subprocess.Popen, str]:
    """`soundbox services` + `migrate`, then an API process on a free port (anonymous access on,
    rate limits out of the way)."""
    exe = [sys.executable, "-m", "soundbox.cli"]
    subprocess.run([*exe, "services"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*exe, "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    env = {
        **os.environ,
        "SOUNDBOX_ALLOW_ANONYMOUS": "true",
        "SOUNDBOX_RATE_LIMITS": '{"generate": [1000, 60], "read": [100000, 60], "speech": [100000, 60], '
        '"admin": [1000, 60]}',
    }
    if workers:
        env["SOUNDBOX_SPEECH_WORKERS"] = str(workers)
    port = free_port()
    proc = subprocess.Popen(
        [*exe, "api", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the API did not become ready")


def one(client: httpx.Client, text: str) -> tuple[float, float, float]:
    """(TTFB s, total s, audio s) of one streamed wav request."""
    started = time.perf_counter()
    first = None
    size = 0
    with client.stream("POST", "/v1/audio/speech", json={"model": "piper", "input": text}) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code}: {resp.read()[:300]!r}")
        rate = int(resp.headers["x-sample-rate"])
        for chunk in resp.iter_raw():
            if first is None and chunk:
                first = time.perf_counter() - started
            size += len(chunk)
    total = time.perf_counter() - started
    return first or total, total, (size - WAV_HEADER) / 2 / rate


def latency(client: httpx.Client, name: str, text: str, repeat: int) -> dict:
    runs = [one(client, text) for _ in range(repeat)]
    ttfb = statistics.median(r[0] for r in runs)
    rtf = statistics.median(r[1] / r[2] for r in runs)
    audio = runs[0][2]
    print(
        f"  {name:<24} {len(text):>5} chars  audio {audio:6.1f} s   TTFB {ttfb * 1000:7.1f} ms   "
        f"RTF {rtf:.3f}   (median of {repeat})"
    )
    return {"ttfb": ttfb, "rtf": rtf}


def in_process(repeat: int) -> None:
    from shared.settings import Settings
    from shared.speech.synth import Utterance
    from shared.speech.voices import VoiceCache, find_voice

    settings = Settings()
    voice = VoiceCache(1, threads=settings.speech_threads).get(find_voice(settings, "en_US-joe-medium"))
    for name, text in (("two sentences", SHORT), ("5000 characters", LONG)):
        rtfs, firsts = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            utterance = Utterance(voice, text)
            n = 0
            for i in range(len(utterance)):
                n += utterance.render(i).size
                if i == 0:
                    firsts.append(time.perf_counter() - started)
            rtfs.append((time.perf_counter() - started) / (n / voice.sample_rate))
        print(
            f"  {name:<24} {len(text):>5} chars  first sentence {statistics.median(firsts) * 1000:7.1f} ms   "
            f"RTF {statistics.median(rtfs):.3f}   (median of {repeat}, {settings.speech_threads} ORT thread)"
        )


def throughput(url: str, headers: dict, clients: int, seconds: float) -> None:
    done: list[float] = []
    refused = [0]
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def loop():
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                r = c.post("/v1/audio/speech", json={"model": "piper", "input": SHORT})
                with lock:
                    if r.status_code == 200:
                        done.append(time.perf_counter() - started)
                    elif r.status_code in (429, 503):
                        refused[0] += 1
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")

    started = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    lat = sorted(done)
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    print(
        f"  {clients} clients, {elapsed:.1f} s: {len(done)} ok, {refused[0]} refused (429/503), "
        f"{len(errors)} errors -> {len(done) / elapsed:.2f} req/s; latency p50 {p(0.5):.0f} ms, p95 {p(0.95):.0f} ms"
    )
    for e in errors[:3]:
        print("   error:", e)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an API already running (default: start one)")
    parser.add_argument("--api-key", default=os.environ.get("SOUNDBOX_API_KEY"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--speech-workers", type=int, help="SOUNDBOX_SPEECH_WORKERS of the API it starts")
    args = parser.parse_args()

    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    print(f"CPU: {model}, {os.cpu_count()} cores")
    proc = None
    url = args.url
    if url is None:
        proc, url = start_api(args.speech_workers)
        print(f"started an API at {url}")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            one(client, SHORT)  # loads the voice
            print("HTTP (streamed wav):")
            latency(client, "two sentences", SHORT, args.repeat)
            latency(client, "5000 characters", LONG, max(1, args.repeat // 2))
        print("in process (no HTTP):")
        in_process(max(1, args.repeat // 2))
        print("throughput (two sentences):")
        throughput(url, headers, args.clients, args.seconds)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
