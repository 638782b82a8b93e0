"""Quality analysis of generated audio: does this clip have a real defect?

The analyzer knows what kind of audio it looks at (``music``, ``sfx``, ``speech``) and, when
given, what was asked for (``prompt``): noise is a defect where music was asked, but the nature
of rain, wind or fire; a steady tone is a stuck generator unless a beep or a drone was asked
for. It looks for, at any sample rate:

========== =====================================================================================
code       what it means
========== =====================================================================================
silence    digital silence, nothing above ``silence_db``, near-silence (RMS under
           ``near_silence_rms_db`` with quiet peaks), or silence but for a blip
clipping   hard clipping: a share of samples piled onto the waveform's exact extremes, flat runs
           there, or a pile-up beyond what sits just under them (a limiter's peaks are none)
noise_like broadband noise where music (or speech) was asked: steady noise, little tonal energy,
           a level that barely moves (drums hit and decay)
hf_noise   dominant high-frequency hiss: a steady share of the energy above the hiss band edge
dc_offset  a large DC offset relative to the signal
dropout    digital-silence gaps cut into the content (sound meets them at full level on both
           sides; pauses and percussive decays reach silence from almost nothing)
early_stop the content stops early: a long silent tail (or a shorter one after an abrupt cut)
stuck_tone one steady tone holds most of the energy of most frames at a steady level
clicks     isolated spikes or short clicks that stand out from their local context (a texture of
           transients, like crackle, rain or an engine, is the sound, not clicks)
========== =====================================================================================

Each issue carries a ``confidence`` and ``fails``: a failing issue makes ``is_good`` false and
puts the score under 50 (the score is 100 times the product of ``1 - penalty`` over the issues,
each failing penalty 0.55-0.9 growing with how far the measurement is past its threshold, so
worse audio scores lower and the retry loop can keep the least bad attempt); a ``minor`` finding
does not fail the clip and costs at most 10 points. Checks the prompt waives (:data:`WAIVERS`)
are reported under ``waived`` with the words that waived them.

Thresholds live in :class:`QualityThresholds`, with defaults per kind (:func:`thresholds_for`);
any field can be overridden per kind (``SOUNDBOX_QUALITY_THRESHOLDS``). docs/quality.md explains
every check, its threshold and why. Everything is plain numpy/scipy (no librosa, no numba):
10 s at 32 kHz costs about 35 ms of CPU.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shared.audio.io import as_channels, check_sample_rate, decode_audio

KINDS = ("music", "sfx", "speech")

BLOCK_SECONDS = 0.01  # envelope resolution
LSB16 = 1.0 / 32768.0  # one step of 16-bit audio
ZERO_LEVEL = LSB16 / 2  # |x| at or below this is digital silence (rounds to 0 in 16 bits)
TINY = 1e-12
LOW_WEIGHT_HZ = 150.0  # spectral shares weigh energy by f^2 / (f^2 + this^2): rumble counts less


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of every check. Defaults suit music; :func:`thresholds_for` adjusts per kind.
    docs/quality.md explains each one and why it sits where it does."""

    # silence: the loudest 10 ms block below this level (dBFS RMS) ...
    silence_db: float = -60.0
    # ... or near-silence: the clip's RMS below this and its loudest block below near_silence_loud_db
    near_silence_rms_db: float = -54.0
    near_silence_loud_db: float = -40.0
    # ... or digital silence but for a blip: less than this many seconds sound at all
    min_sound_seconds: float = 0.1
    # clipping: share of samples exactly at the waveform's extremes (a limiter leaves ~0.01-0.05 %)
    clip_ratio: float = 0.002
    clip_run: int = 4  # ... or flat runs of at least this many equal samples at the extremes
    clip_min_runs: int = 3  # ... at least this many such runs
    clip_pile: float = 2.0  # ... or this many times more samples at the extremes than just under them
    clip_min_count: int = 16  # ... (and at least this many)
    # noise_like: steady-noise share minus half the tonal share above this (>= 1 disables it) ...
    max_noisiness: float = 0.25
    noise_max_dynamics_db: float = 3.0  # ... unless its level moves this fast (dB per 10 ms: drums, not noise)
    # hf_noise: share of a frame's energy above the hiss band edge, in 3 frames out of 4
    hiss_ratio: float = 0.25
    hiss_cutoff_hz: float = 5000.0  # band edge (at most half the Nyquist frequency)
    hiss_ratio_rising: float = 0.25  # ... or above this when the band's power rises with frequency
    hiss_tilt: float = 0.85  # "rising": the band's upper half over its lower half
    # dc_offset: |mean| relative to the RMS of the rest, and an absolute floor
    dc_ratio: float = 0.25
    dc_min: float = 0.02
    # dropout: zero runs at least this long, inside content on both sides
    dropout_ms: float = 5.0
    edge_db: float = -30.0  # sound meets a gap on both sides at this level or more (dB re the loud level)
    # early_stop: silent tail longer than this share of the clip...
    tail_ratio: float = 0.25
    # ... or longer than this share when the sound was cut off abruptly (its last 0.25 ms within
    # edge_db of the loud level)
    cut_tail_ratio: float = 0.1
    tail_silence_db: float = -50.0  # a block this far under the loud level counts as silent
    tail_min_seconds: float = 0.5  # ... and a tail shorter than this is a pause, whatever its share
    # stuck_tone: one tone (a narrow peak and its harmonics) holds this share of the energy...
    tone_ratio: float = 0.5
    tone_persistence: float = 0.7  # ... and dominates this share of the sounding frames
    tone_prominence_db: float = 20.0  # ... standing this far over its neighbouring bins
    tone_clutter: float = 0.1  # ... with at most this share of other energy beside it
    tone_dominant_ratio: float = 0.85  # a tone holding this share of the energy may have ...
    tone_dominant_clutter: float = 0.2  # ... this much beside it (what sounded before it stuck)
    tone_steadiness: float = 0.7  # ... at a steady level (+-6 dB) this share of the time since it began
    # clicks: a spike this many robust deviations above its neighbourhood ...
    click_z: float = 12.0
    click_isolation: float = 5.0  # ... and this many times any other residual within 12 ms
    click_isolation_spike: float = 3.0  # ... (for a lone sample off the waveform)
    click_min_level: float = 0.3  # ... and at least this large against the clip's loud RMS
    # ... unless the sound is a texture of transients (crackle, rain, an engine's firing): at least
    # this many per second (and 10), their heights spread this much (90th over 10th percentile)
    click_texture_rate: float = 3.0
    click_texture_spread: float = 2.0
    click_texture_ratio: float = 5.0
    click_body_ratio: float = 1.5  # ... and no ringing after it: the 2 ms after over the 2 ms before  # ... a click there stands this far over the texture's 90th percentile
    # verdict
    good_score: float = 50.0  # is_good needs no failing issue and a score >= this


_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "music": {},
    # noise is what rain, wind and fire are made of; steady air and hiss can be the sound itself
    "sfx": {"max_noisiness": 1.0, "hiss_ratio": 0.75, "hiss_ratio_rising": 0.3, "tail_ratio": 0.45, "dc_ratio": 0.3},
    # speech pauses between sentences; breath and fricatives are noise; crackle in speech is a
    # defect, not a texture (its glottal pulses ring on and are rejected as clicks anyway)
    "speech": {"max_noisiness": 0.35, "hiss_ratio": 0.3, "tail_ratio": 0.4, "click_texture_rate": 1e9},
}
DEFAULT_THRESHOLDS: dict[str, QualityThresholds] = {
    kind: replace(QualityThresholds(), **values) for kind, values in _KIND_DEFAULTS.items()
}


def thresholds_for(kind: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> QualityThresholds:
    """Thresholds for a kind of audio ('music', 'sfx' or 'speech').

    ``overrides`` maps a kind (or ``"*"`` for every kind) to field values, e.g.
    ``{"*": {"silence_db": -55}, "sfx": {"hiss_ratio": 0.7}}``. Unknown kinds or fields raise
    ValueError.
    """
    if kind not in DEFAULT_THRESHOLDS:
        raise ValueError(f"unknown audio kind {kind!r}; expected one of {', '.join(KINDS)}")
    t = DEFAULT_THRESHOLDS[kind]
    if overrides:
        unknown = set(overrides) - set(KINDS) - {"*"}
        if unknown:
            raise ValueError(f"unknown audio kind(s) {sorted(unknown)} in threshold overrides")
        names = {f.name: f.type for f in fields(QualityThresholds)}
        for scope in ("*", kind):
            values = dict(overrides.get(scope) or {})
            bad = set(values) - set(names)
            if bad:
                raise ValueError(f"unknown quality threshold(s) {sorted(bad)}; known: {', '.join(names)}")
            updates: dict[str, Any] = {
                k: float(v) if names[k] in ("float", float) else int(v) for k, v in values.items()
            }
            t = replace(t, **updates)
    return t


@dataclass
class QualityIssue:
    """One finding. ``fails``: it alone makes the clip bad (every failing issue puts the score
    under 50); a finding that does not fail is ``minor`` and costs a few points at most.
    ``confidence`` (0-1): how sure the analyzer is, from how far the measurement is past its
    threshold (0.5 at the threshold of a failing issue, about 1 far past it; under 0.5 for minor
    findings)."""

    code: str  # see the module docstring
    severity: str  # minor | moderate | severe
    value: float  # the measured value
    threshold: float  # the limit it crossed
    message: str
    confidence: float = 1.0
    fails: bool = True

    def to_dict(self) -> dict:
        """JSON-serializable form."""
        data = asdict(self)
        data["confidence"] = round(float(self.confidence), 2)
        return data


@dataclass
class WaivedCheck:
    """A finding the prompt asked for (a drone is a steady tone, rain is noise): not a defect."""

    code: str
    words: list[str]  # the prompt's words that waived it
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QualityReport:
    """Score (0-100), issues found, checks the prompt waived, and whether the audio is acceptable."""

    score: float
    issues: list[QualityIssue]
    is_good: bool
    waived: list[WaivedCheck] = field(default_factory=list)

    @property
    def failing(self) -> list[QualityIssue]:
        return [i for i in self.issues if i.fails]

    def to_dict(self) -> dict:
        """JSON-serializable form: ``{"score", "issues", "is_good", "waived"}``."""
        return {
            "score": round(float(self.score), 1),
            "issues": [issue.to_dict() for issue in self.issues],
            "is_good": bool(self.is_good),
            "waived": [w.to_dict() for w in self.waived],
        }


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def _lin(db: float) -> float:
    return 10.0 ** (db / 20.0)


# --- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFeatures:
    """Everything the checks look at, measured once per analysis."""

    sample_rate: int
    duration: float
    peak: float  # max |x| of the mono mix (DC removed)
    loud_db: float  # the loudest 10 ms block (dBFS RMS)
    ref_db: float  # the clip's loud level: 99th percentile of 10 ms block RMS (dBFS)
    dc: float  # mean of the mono mix
    dc_ratio: float  # |dc| / RMS of the rest
    clip_ratio: float  # share of samples exactly at the extremes (worst channel)
    clip_runs: int  # flat runs of at least clip_run equal samples at the extremes (worst channel)
    clip_count: int  # samples exactly at the extremes, flat or not (worst channel)
    clip_longest: int  # the longest flat run at the extremes (samples)
    clip_pile: float  # samples at the extremes over those in the 3 % just under them
    rms_db: float  # RMS of the whole mono mix, DC removed (dBFS)
    sound_seconds: float  # time within 40 dB of the loudest block and above silence_db - 10 dBFS
    dynamics_db: float  # 90th percentile of the upper band's level steps between 10 ms blocks
    tonality: float  # share of energy in tonal spectral peaks
    noisiness: float  # noise_share - tonality / 2
    hiss_ratio: float  # share of a frame's energy above the hiss band edge (25th percentile)
    hiss_cutoff_hz: float
    hf_tilt: float  # mean power of the upper half of the hiss band over its lower half
    noise_share: float  # share of the energy that fluctuates like steady noise
    dropouts: tuple[tuple[float, float], ...]  # (start s, length s) of gaps inside content
    tail_ratio: float  # share of the clip that is a silent tail
    tail_cut_db: float  # peak level of the last 0.25 ms before that tail (dB re ref_db)
    tone_ratio: float  # mean share of a frame's energy in the strongest tone (with harmonics)
    tone_persistence: float  # share of sounding frames that tone dominates
    tone_hz: float
    tone_clutter: float  # other tonal or transient energy where it dominates (steep LF weighting)
    tone_prominence_db: float  # the peak over the median of the bins 4-12 away
    tone_steadiness: float  # share of the frames since the tone began with its level within 6 dB of its median
    clicks: tuple[float, ...]  # times (s) of isolated spikes
    click_events: int  # transients that passed the first test (a texture when many)


def _blocks(y: np.ndarray, size: int) -> np.ndarray:
    m = y.size // size
    if m == 0:
        return y[np.newaxis, :]
    return y[: m * size].reshape(m, size)


def _extremes(channel: np.ndarray, min_run: int) -> tuple[int, int, int, float]:
    """(samples at the channel's extreme values, flat runs of >= ``min_run`` there, longest run,
    pile-up: those samples over the samples in the 3 % just under the extremes).

    Clipped audio piles samples onto exactly its ceiling and floor: in runs where a waveform
    was flattened, and one by one where noise-like content poked through, a share of a percent
    or more. Unclipped audio touches its maximum once or twice; a look-ahead limiter's output
    touches its ceiling a few dozen times in isolated samples (0.01-0.05 % of a loud master),
    with many more just under it; a clipped waveform piles more onto the ceiling than its
    smooth distribution leaves just under it.
    """
    top, bottom = float(channel.max()), float(channel.min())
    count = runs = longest = below = 0
    for level in (top, bottom):
        if abs(level) < 64 * LSB16:  # under -54 dBFS a 16-bit file's coarse steps repeat values
            continue
        tol = abs(level) * 1e-6  # clipped samples are equal (float rounding aside)
        at = np.flatnonzero(channel >= level - tol if level > 0 else channel <= level + tol)  # nothing is beyond
        count += int(at.size)
        near = channel >= 0.97 * level if level > 0 else channel <= 0.97 * level
        below += int(np.count_nonzero(near)) - int(at.size)
        if at.size:
            breaks = np.flatnonzero(np.diff(at) > 1)
            lengths = np.diff(np.r_[0, breaks + 1, at.size])
            runs += int((lengths >= min_run).sum())
            longest = max(longest, int(lengths.max()))
    return count, runs, longest, count / max(below, 1)


def _zero_runs(y: np.ndarray, min_len: int, zero_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of runs of digital silence at least ``min_len`` long."""
    idx = np.flatnonzero((y <= zero_level) & (y >= -zero_level))
    if idx.size < min_len:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = idx[np.r_[0, breaks + 1]]
    ends = idx[np.r_[breaks, idx.size - 1]] + 1
    keep = ends - starts >= min_len
    return starts[keep], ends[keep]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x), dtype=np.float64))) if x.size else 0.0


def _stft_power(y: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """|STFT|^2 (frames, bins) with a Hann window; ~8-11 Hz resolution at every rate."""
    from scipy import fft

    n_fft = 2048 if sample_rate < 30000 else 4096
    hop = n_fft // 2
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    spectrum = fft.rfft(frames * window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return power, sample_rate / n_fft


def _peak_mask(power: np.ndarray, width: int = 12, peak_db: float = 10.0) -> np.ndarray:
    """Bins of (frames, bins) power that are narrow spectral peaks.

    A peak is a local maximum more than ``peak_db`` above the mean log power of ``width`` bins
    on its left and on its right (skipping its main lobe), and ``0.8 * peak_db`` above the bins
    two away (a sinusoid's Hann main lobe is gone there; a broad hump is not). Comparing with
    both sides keeps the slopes of coloured noise from looking tonal.
    """
    from scipy.ndimage import uniform_filter1d

    frames, bins = power.shape
    peaks = np.zeros((frames, bins), dtype=bool)
    if bins < 2 * width + 8:
        return peaks
    floor = np.float32(max(float(power.mean()) * 1e-10, 1e-30))
    logp = np.log(power.astype(np.float32) + floor)
    # mean log power of ``width`` bins; left of bin k: bins k-width-1..k-2, right: k+2..k+width+1
    means = uniform_filter1d(logp, width, axis=1, mode="nearest")
    half = width // 2
    padded = np.pad(means, ((0, 0), (half + 2, half + 2)), mode="edge")
    left = padded[:, 1 : bins + 1]  # means[k - half - 1]
    right = padded[:, 2 * half + 4 : 2 * half + 4 + bins]  # means[k + half + 2]
    threshold = np.float32(peak_db * math.log(10) / 10)
    peaks[:] = logp - np.maximum(left, right) > threshold
    peaks[:, 1:] &= logp[:, 1:] >= logp[:, :-1]
    peaks[:, :-1] &= logp[:, :-1] >= logp[:, 1:]
    peaks[:, 2:-2] &= logp[:, 2:-2] - np.maximum(logp[:, :-4], logp[:, 4:]) > 0.8 * threshold
    peaks[:, :2] = False
    peaks[:, -2:] = False
    return peaks


def _spread(mask: np.ndarray, bins: int) -> np.ndarray:
    """A peak mask widened by ``bins`` on each side (along the last axis)."""
    out = mask.copy()
    for shift in range(1, bins + 1):
        out[..., shift:] |= mask[..., :-shift]
        out[..., :-shift] |= mask[..., shift:]
    return out


def _tonality(power: np.ndarray, tonal: np.ndarray) -> float:
    """Share of the energy in narrow spectral peaks (``tonal``: a widened peak mask): close to
    1 for notes and voiced speech, close to 0 for noise of any colour."""
    total = float(power.sum())
    if total <= 0:
        return 0.0
    return float((power * tonal).sum() / total)


def _stuck_tone(
    power: np.ndarray,
    weighted: np.ndarray,
    tonal: np.ndarray,
    bin_hz: float,
    lf_weight: np.ndarray,
    all_frames: np.ndarray,
) -> tuple[float, float, float, float, float, float]:
    """(share, persistence, clutter, prominence dB, frequency, steadiness) of the strongest
    steady tone.

    The strongest bin of the mean spectrum and its harmonics (each +-2 bins) are the tone.
    ``share``: its mean share of a frame's energy; ``persistence``: the share of frames it
    dominates (>= half the energy); ``clutter``: in those frames, other tonal energy (melody,
    chords) against the tone's, on a steep low-frequency weighting so that a held bass note
    under a melody is not taken for a stuck tone; ``prominence``: the tone over the median of
    the bins 4-12 away; ``steadiness``: over every frame (``all_frames``, quiet ones too) from
    the first the tone dominates to the last, the share where its level is within 6 dB of its
    median. A stuck tone holds still; beeps switch on and off, a struck glass decays.
    """
    mean_spec = power.mean(axis=0)
    mean_spec[0] = 0.0
    k = int(np.argmax(mean_spec))
    if k == 0 or mean_spec[k] <= 0:
        return 0.0, 0.0, 1.0, 0.0, 0.0, 0.0
    bins = power.shape[1]
    series = np.zeros(bins, dtype=bool)
    for h in range(1, 9):
        c = round(h * k)
        if c - 2 >= bins:
            break
        series[max(1, c - 2) : c + 3] = True
    per_frame = power[:, series].sum(axis=1) / np.maximum(power.sum(axis=1), TINY)
    dominated = per_frame >= 0.5
    persistence = float(dominated.mean())
    clutter = 1.0
    if dominated.any():
        steep = weighted[dominated] * lf_weight
        own = float(steep[:, series].sum())
        tonal_other = float((steep * (tonal[dominated] & ~series)).sum())
        rest = steep[:, ~series].sum(axis=1)  # drums and the like: the part over the steady floor
        transient = float(np.maximum(rest - np.median(rest), 0.0).sum())
        other = tonal_other + transient
        clutter = other / max(own + other, TINY)
    shoulders = np.r_[mean_spec[max(1, k - 12) : max(1, k - 3)], mean_spec[k + 4 : k + 13]]
    prominence = 10 * math.log10(mean_spec[k] / max(float(np.median(shoulders)), TINY)) if shoulders.size else 0.0
    steadiness = 0.0
    tone_all = all_frames[:, series].sum(axis=1)
    share_all = tone_all / np.maximum(all_frames.sum(axis=1), TINY)
    began = np.flatnonzero(share_all >= 0.5)
    if began.size:
        since = tone_all[int(began[0]) :]
        level = float(np.median(since))
        steadiness = float(np.mean(np.abs(10 * np.log10(np.maximum(since, TINY) / max(level, TINY))) <= 6.0))
    return float(per_frame.mean()), persistence, clutter, prominence, k * bin_hz, steadiness


def _noise_share(power: np.ndarray, frame_energy: np.ndarray, steady_db: float = 2.0) -> float:
    """Share of the energy that is steady noise, from how each bin fluctuates between frames.

    The power of one bin of noise is exponentially distributed: its frame-to-frame variance is
    its mean squared. A held note barely varies. So ``sum(var / mean) / sum(mean)`` over the
    bins is close to 1 for noise of any colour and close to 0 for notes and voiced sounds.
    Only pairs of neighbouring frames at the same overall level (within ``steady_db``) count,
    so attacks and decays (drums, plucks) are not taken for noise; the result is scaled by the
    share of such pairs.
    """
    if power.shape[0] < 3:
        return 0.0
    ratio = frame_energy[1:] / np.maximum(frame_energy[:-1], TINY)
    steady = np.abs(np.log10(np.maximum(ratio, TINY))) * 10 < steady_db
    if not steady.any():
        return 0.0
    a, b = power[:-1][steady], power[1:][steady]
    mean = 0.5 * (a + b).mean(axis=0)
    var = 0.5 * np.square(a - b).mean(axis=0)
    total = float(mean.sum())
    if total <= 0:
        return 0.0
    noise = np.minimum(var / np.maximum(mean, total * 1e-12), mean)
    return float(min(1.0, noise.sum() / total) * steady.mean())


def _clicks(y: np.ndarray, sample_rate: int, ref: float, t: QualityThresholds) -> tuple[list[float], int]:
    """Times of isolated spikes and short clicks (single samples up to ~5-sample bumps).

    ``r = x[n] - (x[n-s] + x[n+s]) / 2`` is what no smooth waveform explains. A spike of
    height A (at stride s = 1; a bump narrower than 2s - 1 samples at stride s) leaves
    ``r = A`` flanked by ``-A/2`` s samples away on both sides; an onset from silence leaves a
    single kink, and noise leaves a dense texture. A click is a residual that is (1)
    ``click_z`` times its neighbourhood's robust level, (2) flanked by an opposite-sign
    residual, (3) ``click_isolation`` times anything else within 12 ms (which also rejects
    periodic glottal pulses; ``click_isolation_spike`` for the exact -A/2 flanks of something
    off the waveform) and (4) at least ``click_min_level`` times the clip's loud RMS. Strides
    1 and 3 are searched.
    """
    if y.size < 64 or ref <= 0:
        return [], 0
    times: list[float] = []
    events = 0
    texture = False  # a texture found at stride 1 is the sound's at stride 3 too
    for stride in (1, 3):
        found, n_events, texture = _clicks_at_stride(y, sample_rate, ref, t, stride, texture)
        events = max(events, n_events)
        for at in found:
            if all(abs(at - other) * sample_rate > 8 for other in times):
                times.append(at)
    return sorted(times), events


def _clicks_at_stride(
    y: np.ndarray, sample_rate: int, ref: float, t: QualityThresholds, s: int, texture: bool = False
) -> tuple[list[float], int, bool]:
    r = y[s:-s] - 0.5 * (y[2 * s :] + y[: -2 * s])  # r[i] belongs to sample i + s
    a = np.abs(r)
    block = max(16, round(sample_rate * 0.005))
    loud = np.flatnonzero(a > t.click_min_level * ref)  # few: the robust scale is needed only there
    if loud.size == 0:
        return [], 0, texture
    blocks = _blocks(a, block)
    m = blocks.shape[0]
    where = np.minimum(loud // block, m - 1)
    # a sample's scale: the largest median of its block and both neighbours (onsets stay quiet)
    needed = np.unique(np.clip(np.concatenate([where - 1, where, where + 1]), 0, m - 1))
    med = np.zeros(m, dtype=a.dtype)
    med[needed] = np.partition(blocks[needed], blocks.shape[1] // 2, axis=1)[:, blocks.shape[1] // 2]
    wide = np.maximum(med[where], np.maximum(med[np.minimum(where + 1, m - 1)], med[np.maximum(where - 1, 0)]))
    candidates = loud[a[loud] > t.click_z * np.maximum(wide, min(LSB16, ref * 1e-4))]
    if candidates.size == 0 or candidates.size > 5000:  # thousands: the sound's texture
        return [], int(candidates.size), texture
    reach = 3 * s  # how far a click's own residual spreads
    groups = np.split(candidates, np.flatnonzero(np.diff(candidates) > 8 + reach) + 1)
    context = max(16, round(sample_rate * 0.012))
    # a texture of transients (crackle, rain, an engine's firing): what stands out of it, only
    # (many of them, of widely spread heights or evenly spaced): only what stands far out of it
    texture_level = 0.0
    if texture or len(groups) >= max(10.0, t.click_texture_rate * y.size / sample_rate):
        heights = np.array([a[g].max() for g in groups])
        lo_, hi_ = np.percentile(heights, [10, 90])
        gaps = np.diff([int(g[0]) for g in groups]).astype(np.float64)
        periodic = gaps.size >= 8 and float(np.median(np.abs(np.diff(gaps)) / np.maximum(gaps[1:], 1.0))) < 0.1
        if texture or hi_ >= t.click_texture_spread * lo_ or periodic:
            texture = True
            texture_level = t.click_texture_ratio * float(hi_)
    times = []
    for g in groups:
        lo, hi = int(g[0]), int(g[-1])
        if hi - lo > 12 + reach:  # a burst, not a click
            continue
        i = lo + int(np.argmax(a[lo : hi + 1]))
        peak = float(a[i])
        if peak < texture_level:
            continue
        offsets = [d for d in range(-reach, reach + 1) if d]
        opposite = {d: float(-np.sign(r[i]) * r[i + d]) / peak if 0 <= i + d < r.size else 0.0 for d in offsets}
        if max(opposite.values()) < 0.25:
            continue  # a kink (an onset), not a spike
        # a struck thing rings on after its attack (a pop, a knock, a drop); a click leaves the
        # sound as it was
        ring = max(4, round(sample_rate * 0.002))
        body = _rms(y[i + reach + 1 : i + reach + 1 + ring])
        prior = _rms(y[max(0, i - reach - ring) : max(0, i - reach)])
        if body > t.click_body_ratio * prior + 0.05 * peak:
            continue
        # something off the waveform leaves exactly -A/2 at +-s
        single = 0.35 <= opposite[-s] <= 0.65 and 0.35 <= opposite[s] <= 0.65
        before = a[max(0, lo - context) : max(0, lo - reach)]
        after = a[hi + reach + 1 : hi + context]
        around = max(float(before.max()) if before.size else 0.0, float(after.max()) if after.size else 0.0)
        if peak >= (t.click_isolation_spike if single else t.click_isolation) * around:
            times.append((i + s) / sample_rate)
    return times, len(groups), texture


def _edge_db(y: np.ndarray, at: int, direction: int, sample_rate: int, ref: float) -> float:
    """Peak level (dB re ``ref``) of the 0.25 ms of sound that meets a silence at ``at``: just
    before it (``direction`` -1) or just after it (+1). Sound that decays or fades into digital
    silence reaches it from almost nothing (< -60 dB); a cut or a dropout meets it mid-waveform."""
    e = max(2, round(sample_rate * 0.00025))
    edge = y[max(0, at - e) : at] if direction < 0 else y[at : at + e]
    return _db(float(np.max(np.abs(edge))) / ref) if ref > 0 and edge.size else -math.inf


def compute_features(
    samples: np.ndarray, sample_rate: int, thresholds: QualityThresholds | None = None
) -> AudioFeatures:
    """Measure everything the checks need (multichannel audio is mixed to mono first)."""
    sample_rate = check_sample_rate(sample_rate)
    t = thresholds or QualityThresholds()
    x = as_channels(samples)
    if x.shape[1] == 0:
        raise ValueError("cannot analyze empty audio")
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    n = x.shape[1]
    duration = n / sample_rate

    # clipping: per channel, on the raw samples
    clip_count, clip_runs, clip_longest, clip_pile = max(
        (_extremes(ch, t.clip_run) for ch in x), key=lambda r: (r[1], r[0])
    )
    clip_ratio = clip_count / n

    raw = x.mean(axis=0, dtype=np.float32)
    dc = float(np.mean(raw, dtype=np.float64))
    y = raw - np.float32(dc)
    peak = float(np.max(np.abs(y)))
    ac_rms = _rms(y)
    dc_ratio = abs(dc) / max(ac_rms, TINY)

    # envelope: RMS of 10 ms blocks (of the raw mix: a silent tail stays silent under DC removal)
    block = max(1, round(sample_rate * BLOCK_SECONDS))
    env = np.sqrt(np.mean(np.square(_blocks(y, block)), axis=1, dtype=np.float64))
    raw_env = env if dc == 0.0 else np.sqrt(np.mean(np.square(_blocks(raw, block)), axis=1, dtype=np.float64))
    loud = float(env.max())
    ref = float(np.percentile(env, 99)) if env.size > 1 else loud
    loud_db, ref_db = _db(loud), _db(ref)
    sound_level = max(loud * _lin(-40.0), _lin(t.silence_db - 10.0))
    sounding_blocks = env[env > sound_level]
    sound_seconds = sounding_blocks.size * block / sample_rate
    # dynamics: how fast the level of the sound's upper band (a first difference: drums' snap,
    # hiss) moves from one 10 ms block to the next (90th percentile of the steps, dB); steady noise
    # (and slow swells like waves) moves by a dB or two, drums hit and decay
    dynamics_db = 0.0
    if sounding_blocks.size >= 4:
        diff_env = np.sqrt(np.mean(np.square(_blocks(np.diff(y, prepend=y[0]), block)), axis=1, dtype=np.float64))
        level_db = 20 * np.log10(np.maximum(diff_env, TINY))
        steps = np.abs(np.diff(level_db))[(env[1:] > sound_level) & (env[:-1] > sound_level)]
        dynamics_db = float(np.percentile(steps, 90)) if steps.size else 0.0

    # tail: trailing blocks far below the loud level (or digitally silent)
    # digital silence: what rounds to 0 in 16 bits, or (for very quiet audio) far under its level
    zero_level = min(ZERO_LEVEL, ref * 3e-4)
    silent_level = max(ref * _lin(t.tail_silence_db), zero_level)
    sounding = np.flatnonzero(raw_env > silent_level)
    tail_ratio, tail_cut_db = 0.0, -math.inf
    if sounding.size and ref > 0:
        last = int(sounding[-1])
        tail_ratio = (env.size - 1 - last) * block / n
        if tail_ratio > 0:
            lo = max(0, (last - 1) * block)
            window = raw[lo : (last + 1) * block]
            loud_samples = np.flatnonzero(np.abs(window) > silent_level)
            cut = lo + (int(loud_samples[-1]) + 1 if loud_samples.size else window.size)
            tail_cut_db = _edge_db(raw, cut, -1, sample_rate, ref)

    # dropouts: zero runs that sound meets at full level on both sides
    dropouts = []
    if ref > 0:
        starts, ends = _zero_runs(raw, max(2, round(sample_rate * t.dropout_ms / 1000)), zero_level)
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if s == 0 or e >= n:
                continue  # leading silence, or the tail (early_stop's business)
            before, after = _edge_db(raw, s, -1, sample_rate, ref), _edge_db(raw, e, 1, sample_rate, ref)
            if min(before, after) >= t.edge_db:
                dropouts.append((s / sample_rate, (e - s) / sample_rate))

    # spectra
    power, bin_hz = _stft_power(y, sample_rate)
    frame_energy = power.sum(axis=1)
    top = float(frame_energy.max()) if frame_energy.size else 0.0
    active = frame_energy > max(top * 1e-4, TINY)  # frames within 40 dB of the loudest
    if not active.any():
        active = np.ones_like(frame_energy, dtype=bool)
    p_active = power[active]
    e_active = frame_energy[active]

    freqs = np.arange(power.shape[1]) * bin_hz
    lf_weight = (freqs**2 / (freqs**2 + LOW_WEIGHT_HZ**2)).astype(np.float32)  # rumble counts less
    weighted = p_active * lf_weight
    tonal = _spread(_peak_mask(weighted), 1)
    tonality = _tonality(weighted, tonal) if top > 0 else 0.0

    noise_share = _noise_share(weighted, e_active)

    cutoff = min(t.hiss_cutoff_hz, sample_rate / 4.0)
    first_hf = math.ceil(cutoff / bin_hz)
    hf = p_active[:, first_hf:].sum(axis=1) / np.maximum(e_active, TINY)
    hiss_ratio = float(np.percentile(hf, 25)) if top > 0 else 0.0
    hf_spec = p_active[:, first_hf:].mean(axis=0)
    half = hf_spec.size // 2
    hf_tilt = float(hf_spec[half:].mean() / max(float(hf_spec[:half].mean()), TINY)) if half else 0.0

    tone_ratio, tone_persistence, tone_clutter, tone_prominence_db, tone_hz, tone_steadiness = _stuck_tone(
        p_active, weighted, tonal, bin_hz, lf_weight, power
    )

    clicks, click_events = _clicks(y, sample_rate, ref, t) if ref > 0 else ([], 0)

    return AudioFeatures(
        sample_rate=sample_rate,
        duration=duration,
        peak=peak,
        loud_db=loud_db,
        ref_db=ref_db,
        dc=dc,
        dc_ratio=dc_ratio,
        clip_ratio=clip_ratio,
        clip_runs=clip_runs,
        clip_count=clip_count,
        clip_longest=clip_longest,
        clip_pile=clip_pile,
        rms_db=_db(ac_rms),
        sound_seconds=sound_seconds,
        dynamics_db=dynamics_db,
        tonality=tonality,
        tone_steadiness=tone_steadiness,
        noisiness=noise_share - 0.5 * tonality,
        hiss_ratio=hiss_ratio,
        hiss_cutoff_hz=cutoff,
        hf_tilt=hf_tilt,
        noise_share=noise_share,
        dropouts=tuple(dropouts),
        tail_ratio=tail_ratio,
        tail_cut_db=tail_cut_db,
        tone_ratio=tone_ratio,
        tone_persistence=tone_persistence,
        tone_hz=tone_hz,
        tone_clutter=tone_clutter,
        tone_prominence_db=tone_prominence_db,
        clicks=tuple(clicks),
        click_events=click_events,
    )


# --- checks --------------------------------------------------------------------------------------


class CheckResult(NamedTuple):
    """The issue a check found (None when it passes) and its penalty (0.55-0.9 for a failing
    issue, at most 0.1 for a minor one)."""

    issue: QualityIssue | None
    penalty: float = 0.0


PASS = CheckResult(None, 0.0)


def _issue(code: str, value: float, threshold: float, excess: float, message: str) -> CheckResult:
    """A failing issue whose severity, confidence and penalty grow with ``excess`` (0 at the
    threshold, 1 = far past)."""
    excess = min(max(float(excess), 0.0), 1.0)
    severity = "severe" if excess >= 0.5 else "moderate"
    return CheckResult(
        QualityIssue(
            code, severity, float(value), float(threshold), message, confidence=0.5 + 0.5 * excess, fails=True
        ),
        0.55 + 0.35 * excess,
    )


def _minor(code: str, value: float, threshold: float, closeness: float, message: str) -> CheckResult:
    """A finding short of a defect (``closeness`` 0-1 of the way to the threshold): reported,
    does not fail the clip, costs at most 10 points."""
    closeness = min(max(float(closeness), 0.0), 1.0)
    return CheckResult(
        QualityIssue(
            code, "minor", float(value), float(threshold), message, confidence=0.1 + 0.3 * closeness, fails=False
        ),
        0.02 + 0.08 * closeness,
    )


def _sounds(f: AudioFeatures, t: QualityThresholds) -> bool:
    """Is there anything to judge? (Near-silence is judged too: room tone can be asked for.)"""
    return not (f.loud_db < t.silence_db or f.sound_seconds < t.min_sound_seconds)


def _near_silent(f: AudioFeatures, t: QualityThresholds) -> bool:
    return f.rms_db < t.near_silence_rms_db and f.loud_db < t.near_silence_loud_db


def check_silence(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Digital silence, near-silence, or silence but for a blip."""
    if f.loud_db == -math.inf or f.peak <= ZERO_LEVEL:
        return _issue("silence", -120.0, t.silence_db, 1.0, "the audio is digital silence")
    if f.loud_db < t.silence_db:
        return _issue(
            "silence",
            f.loud_db,
            t.silence_db,
            (t.silence_db - f.loud_db) / 20.0,
            f"the loudest moment is {f.loud_db:.1f} dBFS, under {t.silence_db:g} dBFS: the audio is nearly silent",
        )
    if _near_silent(f, t):
        return _issue(
            "silence",
            f.rms_db,
            t.near_silence_rms_db,
            (t.near_silence_rms_db - f.rms_db) / 20.0,
            f"the audio's level is {f.rms_db:.1f} dBFS RMS (limit {t.near_silence_rms_db:g}) and its "
            f"loudest moment {f.loud_db:.1f} dBFS: too quiet to be heard",
        )
    if f.sound_seconds < t.min_sound_seconds:
        return _issue(
            "silence",
            f.sound_seconds,
            t.min_sound_seconds,
            1.0 - f.sound_seconds / max(t.min_sound_seconds, 1e-9),
            f"only {f.sound_seconds * 1000:.0f} ms of the {f.duration:.1f} s sound at all "
            f"(limit {t.min_sound_seconds * 1000:.0f} ms): silence with a blip",
        )
    return PASS


def check_clipping(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Samples piled onto the waveform's extremes: the signal hit a ceiling. A share of the
    samples (``clip_ratio``) or flat runs (``clip_min_runs`` runs of ``clip_run`` equal samples);
    a limiter's few dozen isolated samples at its ceiling are neither."""
    # (a periodic waveform's repeated peaks are no pile-up: its samples crowd just under them too)
    shared = f.clip_ratio >= t.clip_ratio and f.clip_pile >= 1.0
    flat = f.clip_runs >= t.clip_min_runs
    piled = f.clip_count >= t.clip_min_count and f.clip_pile >= t.clip_pile
    detail = (
        f"{f.clip_count} samples ({f.clip_ratio:.2%}, {f.clip_pile:.1f}x those just under it) sit exactly "
        f"at the waveform's ceiling or floor, {f.clip_runs} flat runs of {t.clip_run}+ samples "
        f"(longest {f.clip_longest})"
    )
    if not shared and not flat and not piled:
        if f.clip_count >= 12 and f.clip_pile >= 0.2 and f.peak > 0.5:
            return _minor(
                "clipping",
                f.clip_ratio,
                t.clip_ratio,
                f.clip_ratio / t.clip_ratio,
                f"{detail}: peaks touch a ceiling (a limiter's), not clipping",
            )
        return PASS
    excess = max(
        math.log10(max(f.clip_ratio, 1e-9) / t.clip_ratio) / 1.5,
        math.log10(max(f.clip_runs, 1) / max(t.clip_min_runs, 1)) / 1.5 if flat else 0.0,
        math.log10(max(f.clip_pile, 1e-9) / t.clip_pile) if piled else 0.0,
    )
    value, limit = (f.clip_ratio, t.clip_ratio) if shared else (float(f.clip_runs), float(t.clip_min_runs))
    return _issue(
        "clipping", value, limit, excess, f"{detail} (limits {t.clip_ratio:.2%}, {t.clip_min_runs} runs): hard clipping"
    )


def check_noise_like(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Steady broadband noise and little tonal energy: noise where music or speech was asked."""
    if t.max_noisiness >= 1.0 or not _sounds(f, t) or f.noisiness <= t.max_noisiness:
        return PASS
    if f.dynamics_db >= t.noise_max_dynamics_db:  # drums and hits: noisy, not steady noise
        return PASS
    return _issue(
        "noise_like",
        f.noisiness,
        t.max_noisiness,
        (f.noisiness - t.max_noisiness) / max(1e-6, 1 - t.max_noisiness) * 2,
        f"{f.noise_share:.0%} of the energy is steady broadband noise and only {f.tonality:.0%} is "
        f"tonal (noisiness {f.noisiness:.2f}, limit {t.max_noisiness:g}): the audio is noise",
    )


def check_hf_noise(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """A steady share of the energy above the hiss band edge (a smaller one suffices when the
    band's power rises with frequency, as added hiss does and natural sounds do not)."""
    if not _sounds(f, t):
        return PASS
    limit = t.hiss_ratio_rising if f.hf_tilt >= t.hiss_tilt else t.hiss_ratio
    limit = min(limit, t.hiss_ratio)
    if f.hiss_ratio <= limit:
        return PASS
    return _issue(
        "hf_noise",
        f.hiss_ratio,
        limit,
        (f.hiss_ratio - limit) / max(1e-6, 1 - limit),
        f"{f.hiss_ratio:.0%} of the energy is above {f.hiss_cutoff_hz / 1000:g} kHz throughout "
        f"(limit {limit:.0%}): dominant high-frequency hiss",
    )


def check_dc_offset(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """The waveform sits off centre."""
    if abs(f.dc) < t.dc_min or f.dc_ratio < t.dc_ratio:
        if abs(f.dc) >= t.dc_min and f.dc_ratio >= 0.5 * t.dc_ratio:
            return _minor(
                "dc_offset",
                f.dc_ratio,
                t.dc_ratio,
                f.dc_ratio / t.dc_ratio,
                f"DC offset of {f.dc:+.3f} ({f.dc_ratio:.2f}x the signal's RMS; limit {t.dc_ratio:g}x)",
            )
        return PASS
    return _issue(
        "dc_offset",
        f.dc_ratio,
        t.dc_ratio,
        math.log10(f.dc_ratio / t.dc_ratio),
        f"DC offset of {f.dc:+.3f} ({f.dc_ratio:.1f}x the signal's RMS; limit {t.dc_ratio:g}x)",
    )


def check_dropouts(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Digital-silence gaps cut into the content."""
    if not _sounds(f, t) or not f.dropouts:
        return PASS
    longest = max(length for _, length in f.dropouts)
    where = ", ".join(f"{start:.2f} s" for start, _ in f.dropouts[:5])
    return _issue(
        "dropout",
        longest * 1000,
        t.dropout_ms,
        0.4 + 0.2 * len(f.dropouts),
        f"{len(f.dropouts)} gap(s) of digital silence inside the sound (at {where}; longest {longest * 1000:.0f} ms)",
    )


def check_early_stop(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Sound only in the first part of the clip."""
    if not _sounds(f, t):
        return PASS
    abrupt = f.tail_cut_db >= t.edge_db
    limit = t.cut_tail_ratio if abrupt else t.tail_ratio
    if f.tail_ratio <= limit or f.tail_ratio * f.duration < t.tail_min_seconds:
        return PASS
    how = "cut off abruptly" if abrupt else "fades out"
    return _issue(
        "early_stop",
        f.tail_ratio,
        limit,
        (f.tail_ratio - limit) / max(1e-6, 1 - limit) * 2,
        f"the sound {how} and the last {f.tail_ratio:.0%} of the clip is silent (limit {limit:.0%})",
    )


def check_stuck_tone(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """One steady sinusoid throughout."""
    if (
        not _sounds(f, t)
        or f.tone_ratio < t.tone_ratio
        or f.tone_persistence < t.tone_persistence
        or f.tone_prominence_db < t.tone_prominence_db
        or f.tone_clutter > (t.tone_dominant_clutter if f.tone_ratio >= t.tone_dominant_ratio else t.tone_clutter)
        or f.tone_steadiness < t.tone_steadiness
    ):
        return PASS
    return _issue(
        "stuck_tone",
        f.tone_ratio,
        t.tone_ratio,
        (f.tone_ratio - t.tone_ratio) / max(1e-6, 1 - t.tone_ratio) * 2,
        f"a steady {f.tone_hz:.0f} Hz tone holds {f.tone_ratio:.0%} of the energy "
        f"(limit {t.tone_ratio:.0%}): the sound is stuck on one tone",
    )


def check_clicks(f: AudioFeatures, t: QualityThresholds) -> CheckResult:
    """Isolated single-sample spikes and clicks."""
    if not _sounds(f, t) or not f.clicks:
        return PASS
    where = ", ".join(f"{s:.3f} s" for s in f.clicks[:5])
    return _issue(
        "clicks",
        float(len(f.clicks)),
        1.0,
        0.3 + 0.1 * len(f.clicks),
        f"{len(f.clicks)} click(s) or single-sample spike(s) (at {where}{', ...' if len(f.clicks) > 5 else ''})",
    )


CHECKS: tuple[Callable[[AudioFeatures, QualityThresholds], CheckResult], ...] = (
    check_silence,
    check_clipping,
    check_noise_like,
    check_hf_noise,
    check_dc_offset,
    check_dropouts,
    check_early_stop,
    check_stuck_tone,
    check_clicks,
)


# --- the prompt -----------------------------------------------------------------------------------

# What a prompt may ask for that would otherwise be a defect: each check waived by any of its
# words (matched at word starts, so "beep" waives for "beeps" and "beeping" too).
WAIVERS: dict[str, tuple[str, ...]] = {
    "stuck_tone": (
        "beep",
        "alarm",
        "sine",
        "tone",
        "drone",
        "hum",
        "siren",
        "buzz",
        "whistle",
        "dial tone",
        "test tone",
        "tuning fork",
        "ring",
    ),
    "noise_like": (
        "white noise",
        "pink noise",
        "brown noise",
        "noise",
        "static",
        "rain",
        "steam",
        "wind",
        "hiss",
        "waterfall",
        "shower",
        "surf",
        "waves",
        "radio static",
        "vacuum",
        "air conditioner",
        "fan",
    ),
    "hf_noise": (
        "white noise",
        "noise",
        "static",
        "rain",
        "steam",
        "wind",
        "hiss",
        "spray",
        "sizzl",
        "shower",
        "waterfall",
        "cymbal",
        "shaker",
        "sand",
        "air",
    ),
    "silence": ("silence", "silent", "room tone", "quiet", "nothing"),
}


def _waiving_words(prompt: str | None) -> dict[str, list[str]]:
    """For each check, the words of ``prompt`` that waive it (none: not waived)."""
    if not prompt:
        return {}
    text = " ".join(re.findall(r"[a-z0-9']+", prompt.lower()))
    found: dict[str, list[str]] = {}
    for code, words in WAIVERS.items():
        hits = [w for w in words if re.search(r"(?<![a-z0-9])" + re.escape(w), text)]
        if hits:
            found[code] = hits
    return found


# --- entry points --------------------------------------------------------------------------------


def report_from_features(features: AudioFeatures, t: QualityThresholds, prompt: str | None = None) -> QualityReport:
    """Run every check; findings the prompt asked for are waived (reported under ``waived``)."""
    waivers = _waiving_words(prompt)
    results = []
    waived = []
    for check in CHECKS:
        r = check(features, t)
        if r.issue is not None and r.issue.code in waivers:
            if r.issue.fails:
                i = r.issue
                waived.append(WaivedCheck(i.code, waivers[i.code], i.value, i.threshold, i.message))
            continue
        results.append(r)
    issues = [r.issue for r in results if r.issue is not None]
    score = 100.0
    for r in results:
        score *= 1.0 - r.penalty
    score = round(max(0.0, min(100.0, score)), 1)
    is_good = not any(i.fails for i in issues) and score >= t.good_score
    return QualityReport(score=score, issues=issues, is_good=is_good, waived=waived)


def analyze(
    samples: np.ndarray,
    sample_rate: int,
    kind: str = "music",
    thresholds: QualityThresholds | None = None,
    prompt: str | None = None,
) -> QualityReport:
    """Score audio 0-100 and list its defects, judged as ``kind`` ('music', 'sfx', 'speech').

    ``prompt``: what was asked for; its words waive the checks for what it names (a beep or a
    drone is a steady tone, rain and steam are noise and hiss, room tone is quiet)."""
    defaults = thresholds_for(kind)  # validates kind
    t = thresholds if thresholds is not None else defaults
    return report_from_features(compute_features(samples, sample_rate, t), t, prompt)


def analyze_file(
    path: str | Path,
    kind: str = "music",
    thresholds: QualityThresholds | None = None,
    prompt: str | None = None,
) -> QualityReport:
    """Decode an audio file and :func:`analyze` it."""
    samples, sample_rate = decode_audio(path)
    return analyze(samples, sample_rate, kind, thresholds, prompt)
