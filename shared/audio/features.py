"""Cheap descriptors of a finished clip for its categories: tempo (librosa's beat tracker, music
only), loudness range (spread of 400 ms block loudness, dB) and whether it is a one-shot (a hit
that decays rather than a sustained sound). Worker-side (librosa); a few hundred milliseconds
for a 30 s clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.audio.io import decode_audio, to_mono


@dataclass
class AudioFeatures:
    duration: float
    tempo_bpm: float | None  # music only, None when no steady beat is found
    loudness_range_db: float | None  # 95th minus 10th percentile of active 400 ms blocks (None: too short)
    one_shot: bool  # loud start, then a decay of 20 dB or more into the end


def _block_db(y: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    block = max(1, int(sr * seconds))
    n = len(y) // block
    if n == 0:
        return np.empty(0)
    rms = np.sqrt(np.mean(np.square(y[: n * block].reshape(n, block), dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9))


def tempo(y: np.ndarray, sr: int) -> float | None:
    import librosa

    bpm, beats = librosa.beat.beat_track(y=y.astype(np.float32), sr=sr)
    bpm = float(np.atleast_1d(bpm)[0])
    return bpm if len(beats) >= 4 and 30 <= bpm <= 300 else None


def measure(samples: np.ndarray, sr: int, kind: str) -> AudioFeatures:
    y = to_mono(samples).astype(np.float64)
    duration = len(y) / sr
    blocks = _block_db(y, sr, 0.4)
    active = blocks[blocks > blocks.max() - 60] if blocks.size else blocks
    lra = float(np.percentile(active, 95) - np.percentile(active, 10)) if active.size >= 3 else None
    fine = _block_db(y, sr, 0.05)
    one_shot = False
    if fine.size >= 6:
        peak_at = int(np.argmax(fine))
        tail = fine[-max(1, fine.size // 10) :].mean()
        one_shot = peak_at < fine.size * 0.3 and fine[peak_at] - tail >= 20
    bpm = tempo(y, sr) if kind == "music" and duration >= 2 else None
    return AudioFeatures(duration=duration, tempo_bpm=bpm, loudness_range_db=lra, one_shot=one_shot)


def measure_wav(wav: bytes, kind: str) -> AudioFeatures:
    samples, sr = decode_audio(wav)
    return measure(samples, sr, kind)
