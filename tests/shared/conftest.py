"""Fixtures for shared.audio tests: deterministic test signals generated in code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# librosa's numba kernels compile once (tens of seconds) and are cached here for later runs.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "soundbox-numba-cache"))

import numpy as np
import pytest

SR = 32000


class Signals:
    """Factories for float32 test signals (1-D unless stated)."""

    @staticmethod
    def times(seconds: float, sr: int = SR) -> np.ndarray:
        return np.arange(int(round(seconds * sr))) / sr

    @classmethod
    def sine(cls, freq=440.0, seconds=2.0, sr=SR, amp=0.5, phase=0.0) -> np.ndarray:
        t = cls.times(seconds, sr)
        return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)

    @classmethod
    def chord(cls, seconds=4.0, sr=SR, amp=0.15) -> np.ndarray:
        """Music-like: a progression of triads with harmonics, note attacks and decays."""
        t = cls.times(seconds, sr)
        progression = [(261.63, 329.63, 392.0), (220.0, 261.63, 329.63), (174.61, 220.0, 261.63)]
        voicings = [
            sum(
                weight * np.sin(2 * np.pi * f0 * harmonic * t)
                for f0 in triad
                for harmonic, weight in ((1, 1.0), (2, 0.4), (3, 0.2))
            )
            for triad in progression
        ]
        out = np.zeros_like(t)
        for i, start in enumerate(np.arange(0.0, seconds, 0.5)):
            first = int(start * sr)
            local = t[first:] - start  # attack 10 ms, decay 0.6 s
            envelope = (1 - np.exp(-local / 0.01)) * np.exp(-local / 0.6)
            out[first:] += amp * envelope * voicings[i % len(voicings)][first:]
        return out.astype(np.float32)

    @classmethod
    def noise(cls, seconds=2.0, sr=SR, amp=0.3, seed=0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return (amp * rng.standard_normal(int(round(seconds * sr)))).astype(np.float32)

    @classmethod
    def silence(cls, seconds=2.0, sr=SR) -> np.ndarray:
        return np.zeros(int(round(seconds * sr)), dtype=np.float32)

    @classmethod
    def clicks(cls, seconds=2.0, sr=SR, every=2048, amp=0.5) -> np.ndarray:
        """One impulse per analysis frame: a perfectly flat spectrum."""
        out = np.zeros(int(round(seconds * sr)), dtype=np.float32)
        out[::every] = amp
        return out


@pytest.fixture
def signals() -> type[Signals]:
    return Signals
