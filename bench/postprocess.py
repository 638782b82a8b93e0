"""Post-processing timings for one 10 s clip at 32 kHz (mono, music-like), on this machine.

    .venv/bin/python bench/postprocess.py [--seconds 10] [--rate 32000] [--repeat 7] [--json]

Prints the median of ``--repeat`` runs for each step the worker takes after generation
(quality analysis, loop crossfade, loudness normalization, WAV encoding, the spectrogram after
warm-up) and their total, then what the API does on request: each format conversion and the
waveform peaks. Targets on a 2-core machine: analysis <= 50 ms (the quality analyzer, with a
prompt), spectrogram <= 300 ms warm, the whole post-processing <= 500 ms. It prints the load
average too: on a loaded machine the numbers are the load's as much as the code's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "var" / "cache" / "numba"))

import numpy as np  # noqa: E402

from shared.audio import formats, peaks  # noqa: E402
from shared.audio.io import encode_wav  # noqa: E402
from shared.audio.loop import loop_crossfade_seconds, make_loopable  # noqa: E402
from shared.audio.loudness import normalize_loudness  # noqa: E402
from shared.audio.quality import analyze  # noqa: E402


def music_clip(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Chords with harmonics and note envelopes, a bass line and a little noise: (1, n) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for start in np.arange(0.0, seconds, 0.5):
        root = 220.0 * 2 ** (rng.integers(0, 12) / 12)
        first = int(start * rate)
        local = t[first:] - start
        envelope = (1 - np.exp(-local / 0.01)) * np.exp(-local / 0.6)
        for ratio in (1.0, 1.26, 1.5):
            for harmonic, weight in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out[first:] += 0.05 * weight * envelope * np.sin(2 * np.pi * root * ratio * harmonic * local)
    out += 0.15 * np.sin(2 * np.pi * 55.0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    out += 0.002 * rng.standard_normal(n)
    return (out / np.abs(out).max() * 0.8).astype(np.float32)[np.newaxis, :]


def cpu_timed(fn, repeat: int) -> float:
    """Median CPU seconds of this process over ``repeat`` runs: what a run costs when the machine
    is not shared (the analyzer is single-threaded), whatever the load."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def timed(fn, repeat: int) -> tuple[float, Any]:
    """Median seconds over ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=32000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    from shared.audio.spectrogram import render_spectrogram_png, warm_up

    clip, rate = music_clip(args.seconds, args.rate), args.rate
    start = time.perf_counter()
    warm_up()  # what the worker does at start: compile librosa's numba kernels or load them from disk
    warm_up_s = time.perf_counter() - start

    fade = loop_crossfade_seconds(args.seconds, 0.5)
    looped_input = np.concatenate([clip, clip[:, : int(fade * rate)]], axis=1)  # duration + fade, as generated
    results: dict[str, float] = {}
    analyze(clip, rate, "music")  # first call: imports (scipy.fft, ndimage)
    results["analysis"], report = timed(lambda: analyze(clip, rate, "music", prompt="calm piano chords"), args.repeat)
    results["analysis_cpu"] = cpu_timed(lambda: analyze(clip, rate, "music", prompt="calm piano chords"), args.repeat)
    results["loop"], looped = timed(lambda: make_loopable(looped_input, rate, fade), args.repeat)
    results["loudness"], normalized = timed(lambda: normalize_loudness(looped, rate), args.repeat)
    results["wav_encode"], wav = timed(lambda: encode_wav(normalized, rate), args.repeat)
    results["spectrogram_warm"], _ = timed(lambda: render_spectrogram_png(normalized, rate), args.repeat)
    results["postprocess_total"] = sum(
        results[k] for k in ("analysis", "loop", "loudness", "wav_encode", "spectrogram_warm")
    )
    for fmt in ("flac", "mp3", "ogg", "opus"):
        results[f"convert_{fmt}"], _ = timed(lambda f=fmt: formats.convert(wav, f), args.repeat)
    results["peaks_1000"], _ = timed(lambda: peaks.peaks_document(wav, 1000), args.repeat)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    info = {
        "seconds": args.seconds,
        "rate": rate,
        "cpus": os.cpu_count(),
        "load_average_1m": round(load, 2),
        "warm_up_s": round(warm_up_s, 3),
        "clip_is_good": report.is_good,
        **{k: round(v * 1000, 1) for k, v in results.items()},
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(
            f"{args.seconds:g} s clip at {rate} Hz, {os.cpu_count()} CPUs (load average {load:.1f}), median of "
            f"{args.repeat} runs (worker warm-up {warm_up_s:.2f} s, clip judged {'good' if report.is_good else 'bad'})"
        )
        targets = {"analysis": 50, "analysis_cpu": 50, "spectrogram_warm": 300, "postprocess_total": 500}
        for name, seconds in results.items():
            target = targets.get(name)
            verdict = (
                "" if target is None else f"  (target <= {target} ms: {'ok' if seconds * 1000 <= target else 'OVER'})"
            )
            print(f"  {name:18s} {seconds * 1000:8.1f} ms{verdict}")
    return info


if __name__ == "__main__":
    main()
