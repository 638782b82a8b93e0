"""Quality analysis of generated audio: clipping, silence, high-frequency noise, noise-likeness.

Reproduces the original Sound Box analyzer (see shared/reference/original-system.md): four
checks, each with a sub-score of 100 when it passes; the report score is their mean and
``is_good = score >= 50 or no issues``. Features are computed with plain numpy (librosa's
frame 2048 / hop 512 conventions, centred with zero padding) so analysis is fast and never
triggers numba compilation.

Thresholds live in :class:`QualityThresholds` and are looked up per kind
(:func:`thresholds_for`); for now every kind uses the original defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from shared.audio.io import check_sample_rate, decode_audio, to_mono

KINDS = ("music", "sfx", "speech")

FRAME_LENGTH = 2048
HOP_LENGTH = 512
POWER_FLOOR = 1e-10  # librosa's amin for spectral flatness


@dataclass(frozen=True)
class QualityThresholds:
    """Limits for the four checks (defaults are the original system's)."""

    clip_level: float = 0.98  # |x| above this counts as clipped
    clip_ratio: float = 0.05  # flag when more than this fraction of samples is clipped
    silence_rms: float = 0.005  # flag when mean frame RMS is below this
    silence_score: float = 40.0  # sub-score of silent audio
    hf_cutoff_hz: float = 14000.0  # "high frequency" starts here
    hf_ratio: float = 0.5  # flag when more than this fraction of energy is above the cutoff
    flatness: float = 0.7  # flag when mean spectral flatness is above this
    good_score: float = 50.0  # is_good when score >= this (or there are no issues)


DEFAULT_THRESHOLDS: dict[str, QualityThresholds] = {kind: QualityThresholds() for kind in KINDS}


@dataclass
class QualityIssue:
    """One failed check."""

    code: str  # clipping | silence | hf_noise | noise_like
    severity: str  # minor | moderate | severe
    value: float  # the measured value
    threshold: float  # the limit it crossed
    message: str

    def to_dict(self) -> dict:
        """JSON-serializable form."""
        return asdict(self)


@dataclass
class QualityReport:
    """Score (0-100), issues found, and whether the audio is acceptable."""

    score: float
    issues: list[QualityIssue]
    is_good: bool

    def to_dict(self) -> dict:
        """JSON-serializable form: ``{"score", "issues", "is_good"}``."""
        return {
            "score": round(float(self.score), 1),
            "issues": [issue.to_dict() for issue in self.issues],
            "is_good": bool(self.is_good),
        }


@dataclass(frozen=True)
class AudioFeatures:
    """Measurements the checks look at (computed once per analysis)."""

    sample_rate: int
    clipping_ratio: float  # fraction of samples with |x| > clip_level
    mean_rms: float  # mean framewise RMS
    hf_ratio: float  # spectral energy above hf_cutoff_hz / total energy
    flatness: float  # mean spectral flatness (geometric / arithmetic mean of power)


class CheckResult(NamedTuple):
    """Sub-score of one check and its issue (None when it passes)."""

    score: float
    issue: QualityIssue | None


PASS = CheckResult(100.0, None)


def thresholds_for(kind: str) -> QualityThresholds:
    """Default thresholds for a kind of audio ('music', 'sfx' or 'speech')."""
    if kind not in DEFAULT_THRESHOLDS:
        raise ValueError(f"unknown audio kind {kind!r}; expected one of {', '.join(KINDS)}")
    return DEFAULT_THRESHOLDS[kind]


# --- features ------------------------------------------------------------------------------


def frame_signal(y: np.ndarray) -> np.ndarray:
    """Centred, zero-padded frames of FRAME_LENGTH every HOP_LENGTH samples (a strided view)."""
    padded = np.pad(y, FRAME_LENGTH // 2)
    windows = np.lib.stride_tricks.sliding_window_view(padded, FRAME_LENGTH)
    return windows[::HOP_LENGTH]


def power_spectrogram(frames: np.ndarray) -> np.ndarray:
    """|STFT|^2 of the frames with a periodic Hann window, shaped (n_frames, n_bins)."""
    n = np.arange(FRAME_LENGTH, dtype=np.float32)
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / FRAME_LENGTH)).astype(np.float32)
    spectrum = np.fft.rfft(frames * window, axis=-1)
    return spectrum.real**2 + spectrum.imag**2


def compute_features(
    samples: np.ndarray, sample_rate: int, thresholds: QualityThresholds | None = None
) -> AudioFeatures:
    """Measure clipping ratio, mean RMS, high-frequency energy ratio and spectral flatness."""
    sample_rate = check_sample_rate(sample_rate)
    t = thresholds or QualityThresholds()
    y = to_mono(samples)
    if y.size == 0:
        raise ValueError("cannot analyze empty audio")

    clipping_ratio = float(np.mean(np.abs(y) > t.clip_level))

    frames = frame_signal(y)
    mean_rms = float(np.mean(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=-1))))

    power = power_spectrogram(frames).astype(np.float64)
    freqs = np.fft.rfftfreq(FRAME_LENGTH, d=1.0 / sample_rate)
    total = float(power.sum())
    hf_ratio = float(power[:, freqs > t.hf_cutoff_hz].sum() / total) if total > 0 else 0.0

    floored = np.maximum(power, POWER_FLOOR)
    geometric = np.exp(np.mean(np.log(floored), axis=-1))
    flatness = float(np.mean(geometric / np.mean(floored, axis=-1)))

    return AudioFeatures(sample_rate, clipping_ratio, mean_rms, hf_ratio, flatness)


# --- checks --------------------------------------------------------------------------------


def check_clipping(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Too many samples at or near full scale."""
    if f.clipping_ratio <= t.clip_ratio:
        return PASS
    return CheckResult(
        max(0.0, 100.0 - f.clipping_ratio * 300.0),
        QualityIssue(
            "clipping",
            "severe",
            f.clipping_ratio,
            t.clip_ratio,
            f"{f.clipping_ratio:.1%} of samples are clipped (|x| > {t.clip_level:g}); "
            f"limit {t.clip_ratio:.0%}",
        ),
    )


def check_silence(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Mean RMS energy so low the audio is (nearly) silent."""
    if f.mean_rms >= t.silence_rms:
        return PASS
    return CheckResult(
        t.silence_score,
        QualityIssue(
            "silence",
            "moderate",
            f.mean_rms,
            t.silence_rms,
            f"mean RMS {f.mean_rms:.5f} is below {t.silence_rms:g}: the audio is nearly silent",
        ),
    )


def check_hf_noise(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Most of the energy sits above the high-frequency cutoff."""
    if f.hf_ratio <= t.hf_ratio:
        return PASS
    return CheckResult(
        100.0 - f.hf_ratio * 100.0,
        QualityIssue(
            "hf_noise",
            "moderate",
            f.hf_ratio,
            t.hf_ratio,
            f"{f.hf_ratio:.0%} of the energy is above {t.hf_cutoff_hz / 1000:g} kHz "
            f"(limit {t.hf_ratio:.0%}): likely high-frequency noise",
        ),
    )


def check_noise_like(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Spectrum as flat as noise."""
    if f.flatness <= t.flatness:
        return PASS
    return CheckResult(
        100.0 - f.flatness * 100.0,
        QualityIssue(
            "noise_like",
            "moderate",
            f.flatness,
            t.flatness,
            f"mean spectral flatness {f.flatness:.2f} is above {t.flatness:g}: "
            f"the audio sounds like noise",
        ),
    )


CHECKS: tuple[Callable[[AudioFeatures, QualityThresholds], CheckResult], ...] = (
    check_clipping,
    check_silence,
    check_hf_noise,
    check_noise_like,
)


# --- entry points --------------------------------------------------------------------------


def analyze(
    samples: np.ndarray,
    sample_rate: int,
    kind: str = "music",
    thresholds: QualityThresholds | None = None,
) -> QualityReport:
    """Score audio 0-100 and list its issues (multichannel audio is mixed to mono first)."""
    defaults = thresholds_for(kind)  # validates kind
    t = thresholds if thresholds is not None else defaults
    features = compute_features(samples, sample_rate, t)
    results = [check(features, t) for check in CHECKS]
    issues = [r.issue for r in results if r.issue is not None]
    score = round(float(np.mean([r.score for r in results])), 1)
    return QualityReport(score=score, issues=issues, is_good=score >= t.good_score or not issues)


def analyze_file(
    path: str | Path, kind: str = "music", thresholds: QualityThresholds | None = None
) -> QualityReport:
    """Decode an audio file and :func:`analyze` it."""
    samples, sample_rate = decode_audio(path)
    return analyze(samples, sample_rate, kind, thresholds)
