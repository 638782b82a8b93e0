"""Waveform peaks for frontends: the clip cut into N equal spans, each span's (min, max).

Computed from the stored WAV with numpy (``minimum.reduceat`` / ``maximum.reduceat``: one pass),
across all channels, and cached in the object store as JSON beside the audio.
"""

from __future__ import annotations

import io
import json

import numpy as np

from shared.infra.storage import ObjectStore

MAX_POINTS = 10000
DECIMALS = 4


def compute_peaks(samples: np.ndarray, points: int) -> list[list[float]]:
    """``points`` [min, max] pairs of ``(n, channels)`` (or 1-D) samples; fewer when the clip has
    fewer samples than ``points``. Each span covers ``n / points`` samples (rounded)."""
    if points < 1:
        raise ValueError("points must be at least 1")
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 2:  # the envelope of every channel
        low, high = audio.min(axis=1), audio.max(axis=1)
    else:
        low = high = audio
    n = low.size
    if n == 0:
        return []
    points = min(points, n)
    starts = (np.arange(points, dtype=np.int64) * n) // points
    mins = np.minimum.reduceat(low, starts)
    maxs = np.maximum.reduceat(high, starts)
    return np.round(np.stack([mins, maxs], axis=1).astype(np.float64), DECIMALS).tolist()


def peaks_document(wav: bytes, points: int) -> dict:
    """The JSON body for a stored WAV: points, sample_rate, duration, channels, peaks."""
    import soundfile as sf

    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    peaks = compute_peaks(audio, points)
    return {
        "points": len(peaks),
        "sample_rate": int(rate),
        "duration": round(audio.shape[0] / rate, 6),
        "channels": int(audio.shape[1]),
        "peaks": peaks,
    }


def peaks_key(audio_key: str, points: int) -> str:
    """Where the peaks of ``points`` spans are cached: beside the audio."""
    folder = audio_key.rsplit("/", 1)[0] if "/" in audio_key else audio_key
    return f"{folder}/peaks-{int(points)}.json"


def ensure_peaks(store: ObjectStore, audio_key: str, points: int) -> bytes:
    """The peaks JSON of a sound, computed once per ``points`` and then read from the store."""
    if not 1 <= points <= MAX_POINTS:
        raise ValueError(f"points must be 1..{MAX_POINTS}")
    key = peaks_key(audio_key, points)
    if store.exists(key):
        return store.get(key)
    body = json.dumps(peaks_document(store.get(audio_key), points), separators=(",", ":")).encode()
    store.put(key, body, "application/json")
    return body
