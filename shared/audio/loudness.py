"""Loudness normalization (ITU-R BS.1770 integrated loudness) with a true-peak ceiling.

:func:`normalize_loudness` applies one gain: the one that brings the integrated loudness to the
target, reduced if needed so the true peak (4x oversampled) stays under the ceiling. It never
clips. Audio it cannot measure is handled conservatively:

- silence (loudness -inf: every 400 ms block below BS.1770's -70 LUFS gate) is returned as is;
- clips shorter than one 400 ms gating block keep their level, but are turned down if their
  true peak is over the ceiling (they are never boosted).
"""

from __future__ import annotations

import math

import numpy as np

from shared.audio.io import as_channels, check_sample_rate, like_input

BLOCK_SECONDS = 0.4  # BS.1770 gating block (pyloudnorm's default)
OVERSAMPLE = 4  # true-peak estimation factor
MAX_LOUDNESS_CHANNELS = 5  # BS.1770 channel weights cover L, R, C, Ls, Rs


def _to_db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def _true_peak(x: np.ndarray) -> float:
    """Linear true peak of (channels, n) audio: max |x| after 4x polyphase oversampling."""
    if x.size == 0:
        return 0.0
    from scipy.signal import resample_poly

    oversampled = resample_poly(x.astype(np.float64), OVERSAMPLE, 1, axis=-1)
    return float(max(np.max(np.abs(oversampled)), np.max(np.abs(x))))


def true_peak_dbtp(samples: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP (-inf for silence), estimated with 4x oversampling."""
    check_sample_rate(sample_rate)
    return _to_db(_true_peak(as_channels(samples)))


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (-inf for silence).

    Raises ValueError for audio shorter than one 400 ms block or with more than 5 channels.
    """
    import pyloudnorm

    sample_rate = check_sample_rate(sample_rate)
    x = as_channels(samples)
    if x.shape[1] < BLOCK_SECONDS * sample_rate:
        raise ValueError(f"audio shorter than {BLOCK_SECONDS} s cannot be measured")
    if x.shape[0] > MAX_LOUDNESS_CHANNELS:
        raise ValueError(f"loudness is defined for at most {MAX_LOUDNESS_CHANNELS} channels")
    loudness = pyloudnorm.Meter(sample_rate, block_size=BLOCK_SECONDS).integrated_loudness(x.T.astype(np.float64))
    return float(loudness)


def normalize_loudness(
    samples: np.ndarray,
    sample_rate: int,
    target_lufs: float = -14.0,
    true_peak_dbtp: float = -1.0,
) -> np.ndarray:
    """Scale audio to ``target_lufs``, lowering the gain so the true peak stays <= the ceiling."""
    sample_rate = check_sample_rate(sample_rate)
    if true_peak_dbtp > 0:
        raise ValueError("true_peak_dbtp must be <= 0 dBTP (anything higher would clip)")
    x = as_channels(samples)

    gain = 1.0
    if x.shape[1] >= BLOCK_SECONDS * sample_rate:
        loudness = integrated_loudness(x, sample_rate)
        if not math.isfinite(loudness):
            return like_input(x.copy(), samples)
        gain = 10.0 ** ((target_lufs - loudness) / 20.0)

    ceiling = 10.0 ** (true_peak_dbtp / 20.0)
    peak = _true_peak(x) * gain
    if peak > ceiling:
        gain *= ceiling / peak

    out = x * np.float32(gain) if gain != 1.0 else x.copy()
    return like_input(out, samples)
