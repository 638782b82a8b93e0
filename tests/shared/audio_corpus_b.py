"""A second labeled corpus for the quality analyzer, made differently from the first.

tests/shared/audio_corpus.py builds its material from sums of harmonic partials, Butterworth-
filtered noise and vowel formants. This one uses other methods and other material, the kind the
first corpus missed and real generators produce:

- music: FM electric pianos and bells, additive organs and strings with vibrato and chorus,
  Karplus-Strong plucks, drum patterns (pitch-swept kicks, noise snares with a tonal body,
  metallic hats from square-wave clusters), and full mixes mastered through a real look-ahead
  limiter (:func:`limiter`) whose ceiling a few dozen samples touch exactly;
- sound effects: fire (crackle as a Poisson stream of resonant impulses over a roar), rain
  (thousands of drops: short decaying resonances over a bed), knocks on wood and doors, engines
  (firing pulses through an exhaust resonance), footsteps, glass and metal impacts, beeps,
  alarms and sirens, drones, steam and wind (hiss-like by nature);
- speech: the real Piper voice ``en_US-joe-medium`` on texts of several lengths, at three
  ``length_scale`` speeds, resampled to 16, 22.05 and 44.1 kHz.

Every clip carries a prompt, as a job would: effects whose nature is a steady tone (beeps,
drones) or hiss (steam, wind) are asked for by name, and the analyzer may waive checks by it.
Defects are injected by code of their own: hard clipping (gain into a ceiling), clicks and
spikes of several shapes, dropouts (single gaps and packet-loss bursts), DC offset (constant or
a step), a stuck tone, broadband noise (music and speech), hiss, silence (digital, near-silence
at -56 to -80 dBFS RMS, digital silence with one short blip) and truncation.

Seeds ``TUNE_SEEDS`` were used to tune the analyzer; ``HELD_OUT_SEEDS`` were not.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from tests.shared.corpus_cache import CACHE_DIR, cached_corpus
from tests.shared.piper_voice import joe_paths, joe_voice

KINDS = ("music", "sfx", "speech")
RATES = {"music": (22050, 24000, 32000, 44100), "sfx": (16000, 22050, 32000, 44100), "speech": (16000, 22050, 44100)}
DEFECTS = ("silence", "clipping", "broad_noise", "hiss", "dc_offset", "dropout", "early_stop", "stuck_tone", "clicks")
EXPECTED_CODE = {
    "silence": "silence",
    "clipping": "clipping",
    "broad_noise": "noise_like",
    "hiss": "hf_noise",
    "dc_offset": "dc_offset",
    "dropout": "dropout",
    "early_stop": "early_stop",
    "stuck_tone": "stuck_tone",
    "clicks": "clicks",
}


@dataclass
class Clip:
    name: str
    kind: str
    sample_rate: int
    samples: np.ndarray  # float32, 1-D or (2, n)
    defect: str | None
    base: str
    seed: int
    prompt: str
    params: dict = field(default_factory=dict)


# --- helpers ---------------------------------------------------------------------------------------


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def _lin(db: float) -> float:
    return float(10 ** (db / 20))


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _bp(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.5 * hi)
    return signal.sosfilt(signal.butter(order, (lo, hi), "bandpass", fs=sr, output="sos"), x)


def _lp(x: np.ndarray, f: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(signal.butter(order, min(f, 0.45 * sr), "lowpass", fs=sr, output="sos"), x)


def _hp(x: np.ndarray, f: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(signal.butter(order, min(f, 0.45 * sr), "highpass", fs=sr, output="sos"), x)


def _resonator(x: np.ndarray, f: float, decay_s: float, sr: int) -> np.ndarray:
    """A two-pole resonance at ``f`` ringing for about ``decay_s``."""
    r = np.exp(-1.0 / max(decay_s * sr, 1.0))
    w = 2 * np.pi * min(f, 0.45 * sr) / sr
    return signal.lfilter([1 - r], [1, -2 * r * np.cos(w), r * r], x)


def _env_ar(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    t = _t(n, sr)
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / max(release, 1e-4))


def _add(out: np.ndarray, x: np.ndarray, at: int) -> None:
    if at >= out.size:
        return
    end = min(out.size, at + x.size)
    out[at:end] += x[: end - at]


def _fade(x: np.ndarray, sr: int, seconds: float = 0.05) -> np.ndarray:
    r = min(x.size // 4, int(seconds * sr))
    if r > 1:
        x = x.copy()
        x[:r] *= np.linspace(0, 1, r)
        x[-r:] *= np.linspace(1, 0, r)
    return x


def _tail(x: np.ndarray, sr: int, seconds: float = 0.03) -> np.ndarray:
    r = min(x.size // 2, int(seconds * sr))
    x = x.copy()
    x[-r:] *= np.linspace(1, 0, r) ** 2
    return x


def _midi(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def _slow(rng, n: int, sr: int, rate: float, lo: float, hi: float) -> np.ndarray:
    points = max(3, int(n / sr * rate) + 3)
    return np.interp(np.arange(n), np.linspace(0, n, points), rng.uniform(lo, hi, points))


def limiter(x: np.ndarray, sr: int, ceiling: float, lookahead_s: float = 0.005, release_s: float = 0.08) -> np.ndarray:
    """A look-ahead brickwall limiter: the gain that keeps every sample under ``ceiling`` is
    held over the look-ahead window and release time, then smoothed over the look-ahead, so it
    is down before each peak arrives and the loudest peaks land exactly on the ceiling."""
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-12))
    la = max(2, int(lookahead_s * sr))
    hold = la + int(release_s * sr)
    held = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
    gain = uniform_filter1d(held, size=la, mode="nearest")
    gain = np.minimum(gain, need)  # what smoothing let through: hard-limit it
    return x * gain


# --- music ---------------------------------------------------------------------------------------

SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 3, 5, 7, 10), (0, 2, 4, 7, 9))


def _fm_note(f: float, n: int, sr: int, ratio: float, index: float, decay: float, rng) -> np.ndarray:
    t = _t(n, sr)
    idx_env = index * np.exp(-t / (decay * 0.5))
    mod = np.sin(2 * np.pi * f * ratio * t + rng.uniform(0, 6.3))
    return np.sin(2 * np.pi * f * t + idx_env * mod) * _env_ar(n, sr, 0.003, decay)


def music_fm_keys(rng, n, sr):
    """An FM electric piano or bell playing chords and a melody."""
    out = np.zeros(n)
    scale = SCALES[int(rng.integers(0, len(SCALES)))]
    root = int(rng.integers(48, 60))
    ratio = float(rng.choice([1.0, 2.0, 3.5, 1.41]))
    index = rng.uniform(0.5, 4)
    beat = int(rng.uniform(0.2, 0.6) * sr)
    at = 0
    while at < n:
        notes = [
            root + scale[int(rng.integers(0, len(scale)))] + 12 * int(rng.integers(0, 2))
            for _ in range(int(rng.integers(1, 4)))
        ]
        length = beat * int(rng.choice([1, 2, 4]))
        dur = min(length * 2, n - at)
        for m in notes:
            _add(out, _fm_note(_midi(m), dur, sr, ratio, index, rng.uniform(0.2, 1.2), rng) * rng.uniform(0.5, 1), at)
        at += length
    return _hp(out, 20, sr)  # FM with a 1:1 ratio makes DC; every mix filters it


def music_organ(rng, n, sr):
    """Additive organ or strings: held chords, drawbar partials, vibrato, a chorus of detuned voices."""
    out = np.zeros(n)
    scale = SCALES[int(rng.integers(0, len(SCALES)))]
    root = int(rng.integers(45, 57))
    seg = int(rng.uniform(0.8, 2.0) * sr)
    weights = rng.uniform(0.1, 1, 8) * (np.arange(1, 9) ** -rng.uniform(0.5, 1.5))
    strings = rng.random() < 0.5
    at = 0
    t_all = _t(n, sr)
    vib = rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(4, 6.5) * t_all)
    while at < n:
        length = min(seg, n - at)
        t = t_all[:length]
        chord = np.zeros(length)
        for d in (0, 2, 4):
            f = _midi(root + scale[d % len(scale)] + 12 * (d // len(scale)))
            for h, w in enumerate(weights, 1):
                if f * h > 0.4 * sr:
                    break
                for det in (-0.003, 0.003) if strings else (0.0,):
                    phase = 2 * np.pi * f * h * (1 + det) * np.cumsum(1 + vib[at : at + length]) / sr
                    chord += w * np.sin(phase + rng.uniform(0, 6.3))
        chord *= np.minimum(1, t / rng.uniform(0.02, 0.3)) * np.minimum(1, (length - np.arange(length)) / (0.05 * sr))
        _add(out, chord, at)
        at += length
        root += int(rng.choice([-5, -3, 0, 2, 5, 7])) if rng.random() < 0.7 else 0
        root = int(np.clip(root, 40, 64))
    return out


def music_pluck(rng, n, sr):
    """Karplus-Strong plucked strings: an arpeggio."""
    out = np.zeros(n)
    scale = SCALES[int(rng.integers(0, len(SCALES)))]
    root = int(rng.integers(50, 64))
    beat = int(rng.uniform(0.12, 0.35) * sr)
    g = rng.uniform(0.985, 0.998)
    at = 0
    while at < n:
        f = _midi(root + scale[int(rng.integers(0, len(scale)))] + 12 * int(rng.integers(0, 2)))
        delay = max(2, round(sr / f))
        length = min(n - at, int(rng.uniform(0.5, 1.5) * sr))
        burst = np.zeros(length)
        burst[:delay] = _lp(rng.uniform(-1, 1, delay), rng.uniform(2000, 8000), sr, 1)
        a = np.zeros(delay + 2)
        a[0], a[delay], a[delay + 1] = 1.0, -g / 2, -g / 2
        _add(out, signal.lfilter([1.0], a, burst) * rng.uniform(0.5, 1), at)
        at += beat * int(rng.choice([1, 1, 2]))
    return out


def _kick(rng, sr):
    n = int(rng.uniform(0.2, 0.45) * sr)
    t = _t(n, sr)
    f = rng.uniform(45, 65) * (1 + rng.uniform(2, 5) * np.exp(-t / rng.uniform(0.01, 0.04)))
    click = _hp(rng.standard_normal(n), 3000, sr) * np.exp(-t / 0.002) * rng.uniform(0, 0.3)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * _env_ar(n, sr, 0.001, rng.uniform(0.08, 0.2)) + click


def _snare(rng, sr):
    n = int(rng.uniform(0.15, 0.3) * sr)
    t = _t(n, sr)
    body = np.sin(2 * np.pi * rng.uniform(170, 230) * t) * np.exp(-t / 0.04)
    rattle = _bp(rng.standard_normal(n), 1500, 9000, sr) * np.exp(-t / rng.uniform(0.05, 0.12))
    return 0.6 * body + 0.5 * rattle / max(_rms(rattle), 1e-9) * 0.3


def _hat(rng, sr):
    n = int(rng.uniform(0.04, 0.2) * sr)
    t = _t(n, sr)
    metal = sum(signal.square(2 * np.pi * f * t) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    metal = _hp(metal, min(7000, 0.35 * sr), sr, 4)
    return 0.15 * metal / max(_rms(metal), 1e-9) * np.exp(-t / rng.uniform(0.01, 0.06))


def music_drums(rng, n, sr):
    """A drum pattern (16 steps), alone or with a bass line."""
    out = np.zeros(n)
    step = int(rng.uniform(0.1, 0.18) * sr)
    kicks = rng.random(16) < 0.3
    kicks[0] = True
    snares = rng.random(16) < 0.2
    snares[4] = snares[12] = True
    hats = rng.random(16) < rng.uniform(0.4, 1.0)
    sounds = {"k": _kick(rng, sr), "s": _snare(rng, sr), "h": _hat(rng, sr)}
    sounds = {k: _tail(v, sr) for k, v in sounds.items()}  # a sample rings out, it is not cut
    for i, at in enumerate(range(0, n, step)):
        j = i % 16
        for name, pattern, gain in (("k", kicks, 1.0), ("s", snares, 0.7), ("h", hats, 0.5)):
            if pattern[j]:
                _add(out, sounds[name] * gain * rng.uniform(0.8, 1.0), at)
    if rng.random() < 0.6:  # a bass line
        scale = SCALES[int(rng.integers(0, len(SCALES)))]
        root = int(rng.integers(31, 40))
        bass = np.zeros(n)
        for at in range(0, n, 2 * step):
            f = _midi(root + scale[int(rng.integers(0, len(scale)))])
            length = min(2 * step, n - at)
            t = _t(length, sr)
            bass[at : at + length] = (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * _env_ar(
                length, sr, 0.005, 0.3
            )
        out += rng.uniform(0.2, 0.5) * bass
    return out


def music_master(rng, n, sr):
    """A full mix through a look-ahead limiter into a 0.97-0.995 ceiling, loud (a modern master)."""
    parts = [music_drums(rng, n, sr), music_fm_keys(rng, n, sr) if rng.random() < 0.5 else music_organ(rng, n, sr)]
    mix = parts[0] / max(_peak(parts[0]), 1e-9) + rng.uniform(0.3, 0.8) * parts[1] / max(_peak(parts[1]), 1e-9)
    ceiling = float(rng.choice([0.97, 0.98, 0.99, 0.995]))
    drive = _lin(rng.uniform(3, 9))  # this much louder than the peaks allow
    return limiter(mix / _peak(mix) * ceiling * drive, sr, ceiling)


MUSIC = {
    "fm_keys": music_fm_keys,
    "organ": music_organ,
    "pluck": music_pluck,
    "drums": music_drums,
    "master": music_master,
}
MUSIC_PROMPTS = {
    "fm_keys": "mellow electric piano chords",
    "organ": "church organ and strings",
    "pluck": "plucked guitar arpeggio",
    "drums": "funky drum loop with bass",
    "master": "loud modern pop mix, mastered",
}


# --- sound effects -----------------------------------------------------------------------------


def _impulses(rng, n: int, rate_hz: float, sr: int) -> np.ndarray:
    """A Poisson stream of impulses with log-normal heights."""
    count = rng.poisson(rate_hz * n / sr)
    x = np.zeros(n)
    at = rng.integers(0, n, count)
    np.add.at(x, at, rng.lognormal(0, 0.8, count) * rng.choice([-1, 1], count))
    return x


def sfx_fire(rng, n, sr):
    """A campfire: a low roar and crackle (resonant impulses) and the odd pop."""
    roar = _lp(rng.standard_normal(n), rng.uniform(300, 900), sr) * _slow(rng, n, sr, 3, 0.4, 1)
    crackle = _impulses(rng, n, rng.uniform(20, 120), sr)
    crackle = _resonator(crackle, rng.uniform(1500, 5000), rng.uniform(0.0005, 0.003), sr) + 0.5 * _resonator(
        crackle, rng.uniform(400, 1200), 0.002, sr
    )
    sharp = _hp(_impulses(rng, n, rng.uniform(5, 40), sr), 1000, sr, 1) * rng.uniform(0.2, 0.6)
    crackle = crackle / max(_peak(crackle), 1e-9) + sharp
    pops = _resonator(_impulses(rng, n, rng.uniform(0.5, 3), sr) * 4, rng.uniform(600, 2500), 0.004, sr)
    return 0.5 * roar / max(_rms(roar), 1e-9) * 0.1 + crackle + pops


def sfx_rain(rng, n, sr):
    """Rain: a pinkish bed and many drops, each a short decaying resonance."""
    bed = _bp(rng.standard_normal(n), 200, 8000, sr) * rng.uniform(0.02, 0.1)
    drops = np.zeros(n)
    for f in rng.uniform(1500, 6000, 6):
        drops += _resonator(_impulses(rng, n, rng.uniform(30, 200), sr), f, rng.uniform(0.002, 0.01), sr)
    return bed + drops * rng.uniform(0.3, 1)


def sfx_knocks(rng, n, sr):
    """Knocks on a door or a table: groups of 2-4 knocks, each a few wooden resonances."""
    out = np.zeros(n)
    modes = rng.uniform(150, 1200, 4)
    at = int(rng.uniform(0.05, 0.3) * sr)
    while at < n:
        for _ in range(int(rng.integers(2, 5))):
            hit = np.zeros(int(0.25 * sr))
            hit[: int(0.0015 * sr)] = np.hanning(int(0.0015 * sr)) * rng.uniform(0.6, 1)
            knock = sum(_resonator(hit, f * rng.uniform(0.97, 1.03), rng.uniform(0.01, 0.05), sr) for f in modes)
            _add(out, knock, at)
            at += int(rng.uniform(0.12, 0.3) * sr)
        at += int(rng.uniform(0.5, 1.5) * sr)
    return out + rng.uniform(0, 1e-4) * rng.standard_normal(n) * _peak(out)


def sfx_engine(rng, n, sr):
    """An engine idling or revving: firing pulses through an exhaust resonance, with rumble."""
    rpm = _slow(rng, n, sr, 0.7, rng.uniform(700, 1500), rng.uniform(1500, 4000))
    firing = rpm / 60 * 2  # 4 cylinders, 4-stroke: two firings per revolution
    phase = np.cumsum(firing) / sr
    pulses = np.zeros(n)
    idx = np.flatnonzero(np.diff(np.floor(phase)) > 0)
    pulses[idx] = rng.uniform(0.7, 1, idx.size)
    exhaust = _resonator(pulses, rng.uniform(80, 250), rng.uniform(0.005, 0.02), sr) + 0.3 * _resonator(
        pulses, rng.uniform(600, 1500), 0.002, sr
    )
    exhaust = exhaust / max(_peak(exhaust), 1e-9) + rng.uniform(0, 0.5) * _hp(pulses, 2000, sr, 1)  # the firing's snap
    rumble = (
        _lp(rng.standard_normal(n), 400, sr)
        * 0.2
        * _rms(exhaust)
        / max(_rms(_lp(rng.standard_normal(n), 400, sr)), 1e-9)
    )
    return _hp(exhaust + rumble, 20, sr)  # a microphone records no DC


def sfx_footsteps(rng, n, sr):
    """Footsteps on gravel or wood, a low room noise between them."""
    out = np.zeros(n)
    step = rng.uniform(0.4, 0.7)
    gravel = rng.random() < 0.5
    for at in np.arange(rng.uniform(0, 0.3), n / sr, step):
        length = int(0.15 * sr)
        t = _t(length, sr)
        if gravel:
            s = _bp(rng.standard_normal(length), 500, 6000, sr) * np.exp(-t / 0.04)
        else:
            s = _resonator(np.r_[np.hanning(int(0.003 * sr)), np.zeros(length)], rng.uniform(90, 200), 0.03, sr)[
                :length
            ]
            s = s / max(_peak(s), 1e-9) + 0.2 * _bp(rng.standard_normal(length), 1000, 4000, sr) * np.exp(-t / 0.01)
        _add(out, s * rng.uniform(0.6, 1), int(at * sr))
    return out + _lp(rng.standard_normal(n), 2000, sr) * 0.003 * _peak(out)


def sfx_impact(rng, n, sr):
    """A glass or metal impact ringing out: inharmonic modes."""
    out = np.zeros(n)
    hit = np.zeros(n)
    at = int(rng.uniform(0.05, 0.4) * sr)
    hit[at : at + int(0.001 * sr) + 1] = 1
    base = rng.uniform(300, 1500)
    for k in (1, 2.76, 5.4, 8.93, 13.3):
        out += _resonator(hit, base * k * rng.uniform(0.98, 1.02), rng.uniform(0.2, 1.5) / k**0.5, sr) * rng.uniform(
            0.3, 1
        )
    return out


def sfx_beeps(rng, n, sr):
    """Beeps: a microwave, a truck reversing, a timer (a sine or square tone, on and off)."""
    f = rng.uniform(500, 3000)
    on, off = rng.uniform(0.08, 0.5), rng.uniform(0.08, 0.6)
    t = _t(n, sr)
    tone = np.sin(2 * np.pi * f * t)
    if rng.random() < 0.4:
        tone = np.sign(tone) * np.abs(tone) ** 0.3  # a squarish buzzer
    gate = ((t % (on + off)) < on).astype(float)
    gate = uniform_filter1d(gate, int(0.004 * sr) + 1)
    return tone * gate + 0.003 * rng.standard_normal(n)


def sfx_alarm(rng, n, sr):
    """An alarm: a two-tone pattern or a siren sweep."""
    t = _t(n, sr)
    if rng.random() < 0.5:
        f1, f2 = rng.uniform(600, 1000), rng.uniform(1000, 1800)
        period = rng.uniform(0.3, 1.0)
        f = np.where((t % period) < period / 2, f1, f2)
    else:
        f = rng.uniform(600, 900) + rng.uniform(300, 800) * (0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(0.5, 2.5)))
    x = np.sin(2 * np.pi * np.cumsum(f) / sr)
    x += 0.3 * np.sin(2 * np.pi * 3 * np.cumsum(f) / sr)
    return x + 0.003 * rng.standard_normal(n)


def sfx_drone(rng, n, sr):
    """A drone: a held low hum with a few harmonics and a slow wobble (a spaceship, a transformer)."""
    t = _t(n, sr)
    f = rng.uniform(50, 220)
    wob = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    x = sum(rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6)) for h in range(1, 5))
    return x * wob + 0.01 * rng.standard_normal(n)


def sfx_steam(rng, n, sr):
    """Steam hissing from a valve or a kettle: bright, steady noise."""
    hiss = _hp(rng.standard_normal(n), rng.uniform(2500, 5000), sr, 2)
    return _fade(hiss * _slow(rng, n, sr, 1, 0.6, 1), sr, 0.2)


def sfx_wind(rng, n, sr):
    """Wind: band-passed noise in gusts, with a whistle sometimes."""
    gust = _slow(rng, n, sr, 0.8, 0.2, 1)
    x = _bp(rng.standard_normal(n), rng.uniform(100, 400), rng.uniform(1500, 6000), sr) * gust
    if rng.random() < 0.4:
        x += 0.3 * _resonator(rng.standard_normal(n), rng.uniform(600, 1500), 0.05, sr) * gust
    return x


def sfx_roomtone(rng, n, sr):
    """Room tone: the air of a quiet room, a faint hum, 48-66 dB under full scale (asked for as such)."""
    air = _lp(rng.standard_normal(n), rng.uniform(800, 4000), sr, 1)
    hum = rng.uniform(0, 0.5) * np.sin(2 * np.pi * float(rng.choice([50, 60])) * _t(n, sr))
    x = air / _rms(air) + hum
    return x / _rms(x) * _lin(-rng.uniform(48, 66))


SFX = {
    "fire": sfx_fire,
    "rain": sfx_rain,
    "knocks": sfx_knocks,
    "engine": sfx_engine,
    "footsteps": sfx_footsteps,
    "impact": sfx_impact,
    "beeps": sfx_beeps,
    "alarm": sfx_alarm,
    "drone": sfx_drone,
    "steam": sfx_steam,
    "wind": sfx_wind,
    "roomtone": sfx_roomtone,
}
SFX_PROMPTS = {
    "fire": ("crackling campfire", "fireplace burning"),
    "rain": ("rain on a window", "heavy rain"),
    "knocks": ("knocking on a wooden door", "knock knock"),
    "engine": ("car engine revving", "motorbike idling"),
    "footsteps": ("footsteps on gravel", "someone walking"),
    "impact": ("glass being struck", "metal clang"),
    "beeps": ("microwave beep", "truck reversing beeps"),
    "alarm": ("fire alarm", "police siren alarm"),
    "drone": ("low spaceship drone", "electrical hum drone"),
    "steam": ("steam hissing from a pipe", "kettle steam"),
    "wind": ("wind howling", "strong wind through trees"),
    "roomtone": ("quiet room tone", "near silence in an empty hall"),
}
# defects that are the nature of some effects (asked for by the prompt): not injected there
NOT_FOR = {
    "beeps": {"stuck_tone"},
    "alarm": {"stuck_tone"},
    "drone": {"stuck_tone"},
    "steam": {"hiss"},
    "rain": {"hiss"},
    "wind": {"hiss"},
    "roomtone": {"silence", "hiss", "early_stop", "stuck_tone"},
}


# --- speech --------------------------------------------------------------------------------------

TEXTS = (
    "Yes.",
    "Turn left at the next corner.",
    "The museum opens at nine o'clock on weekdays and at ten on Sundays.",
    "Good evening. Tonight's forecast calls for clear skies, with temperatures falling to four degrees.",
    "Before you begin, make sure the device is charged. Press and hold the power button for three "
    "seconds, then follow the instructions on the screen.",
)
LENGTH_SCALES = (0.8, 1.0, 1.3)
CACHE = CACHE_DIR


@lru_cache(maxsize=1)
def piper_speech() -> tuple[dict[tuple[int, float], np.ndarray], int]:
    """Every text at every length scale, spoken by the real en_US-joe-medium voice through
    shared.speech (cached on disk between runs)."""
    model, _ = joe_paths()
    key = hashlib.sha256(("\n".join(TEXTS) + repr(LENGTH_SCALES) + str(model.stat().st_size)).encode()).hexdigest()[:16]
    cache = CACHE / f"piper-b-{key}.npz"
    keys = [(i, s) for i in range(len(TEXTS)) for s in LENGTH_SCALES]
    if cache.is_file():
        data = np.load(cache)
        return {k: data[f"a{j}"] for j, k in enumerate(keys)}, int(data["sr"])
    from shared.speech.synth import SpeechOptions, synthesize

    voice = joe_voice()
    audio = {k: synthesize(voice, TEXTS[k[0]], SpeechOptions(length_scale=k[1], sentence_silence=0.3)) for k in keys}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, sr=voice.sample_rate, **{f"a{j}": audio[k] for j, k in enumerate(keys)})
    os.replace(tmp, cache)
    return audio, voice.sample_rate


def _resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    if sr_from == sr_to:
        return x.astype(np.float64)
    g = np.gcd(sr_from, sr_to)
    return signal.resample_poly(x.astype(np.float64), sr_to // g, sr_from // g)


def speech_piper(rng, n, sr):
    audio, voice_sr = piper_speech()
    text = int(rng.integers(0, len(TEXTS)))
    scale = LENGTH_SCALES[int(rng.integers(0, len(LENGTH_SCALES)))]
    x = _resample(audio[(text, scale)], voice_sr, sr)
    lead = np.zeros(int(rng.uniform(0, 0.15) * sr))
    return np.concatenate([lead, x, np.zeros(int(rng.uniform(0.05, 0.3) * sr))])


SPEECH = {"piper": speech_piper}


# --- defects -------------------------------------------------------------------------------------


def _loud_spots(x: np.ndarray, sr: int, within_db: float = 20) -> np.ndarray:
    block = max(1, sr // 200)
    m = x.size // block
    rms = np.sqrt(np.mean(x[: m * block].reshape(m, block) ** 2, axis=1))
    return np.flatnonzero(rms > rms.max() * _lin(-within_db)) * block


def inject(defect: str, x: np.ndarray, sr: int, rng) -> tuple[np.ndarray, dict]:
    n = x.size
    y = x.copy()
    peak = max(_peak(y), 1e-9)
    level = max(_rms(y), 1e-9)
    if defect == "silence":
        mode = str(rng.choice(["digital", "near", "near", "blip"]))
        if mode == "digital":
            return np.zeros(n), {"mode": mode}
        if mode == "near":  # the content, far too quiet to be heard
            rms_db = rng.uniform(-80, -56)
            return y / level * _lin(rms_db), {"mode": mode, "rms_db": rms_db}
        z = np.zeros(n)
        length = int(rng.uniform(0.002, 0.03) * sr)
        at = int(rng.uniform(0.1, 0.9) * (n - length))
        z[at : at + length] = (
            rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * rng.uniform(200, 3000) * _t(length, sr)) * np.hanning(length)
        )
        return z, {"mode": mode, "blip_ms": 1000 * length / sr}
    if defect == "clipping":
        over = rng.uniform(2, 12)  # dB of gain into the ceiling
        ceiling = float(rng.choice([1.0, 32767 / 32768, 0.99, 0.95, 0.8]))
        return np.clip(y / peak * ceiling * _lin(over), -ceiling, ceiling), {"over_db": over, "ceiling": ceiling}
    if defect == "broad_noise":
        noise = rng.standard_normal(n)
        if rng.random() < 0.5:
            noise = _lp(noise, rng.uniform(1000, 8000), sr, 1)
        noise /= _rms(noise)
        if rng.random() < 0.5:
            return noise * level * rng.uniform(0.5, 2), {"mode": "replace"}
        return y + noise * level * _lin(rng.uniform(3, 12)), {"mode": "buried"}
    if defect == "hiss":
        edge = rng.uniform(0.5, 0.8) * sr / 2
        hiss = _hp(rng.standard_normal(n), max(edge, 4500), sr, 4)
        return y + hiss / _rms(hiss) * level * rng.uniform(0.8, 2.0), {"edge": edge}
    if defect == "dc_offset":
        offset = rng.choice([-1, 1]) * max(rng.uniform(0.04, 0.3), rng.uniform(0.5, 1.5) * level)
        if rng.random() < 0.3:  # a step: the offset appears part way through
            start = int(rng.uniform(0.05, 0.3) * n)
            y[start:] += offset
            return y, {"offset": offset, "start": start / n}
        return y + offset, {"offset": offset}
    if defect == "dropout":
        loud = _loud_spots(y, sr)
        loud = loud[(loud > 0.05 * n) & (loud < 0.9 * n)]
        gaps = []
        bursts = rng.random() < 0.4  # packet loss: a burst of short gaps
        for _ in range(int(rng.integers(1, 4)) if not bursts else 1):
            at = int(rng.choice(loud)) if loud.size else n // 3
            if bursts:
                for _ in range(int(rng.integers(3, 8))):
                    g = int(rng.uniform(0.006, 0.02) * sr)
                    y[at : at + g] = 0.0
                    gaps.append(g / sr)
                    at += g + int(rng.uniform(0.02, 0.06) * sr)
            else:
                g = int(rng.uniform(0.008, 0.3) * sr)
                y[at : at + g] = 0.0
                gaps.append(g / sr)
        return y, {"gaps": gaps}
    if defect == "early_stop":
        loud = _loud_spots(y, sr, 15)
        loud = loud[(loud > 0.1 * n) & (loud < 0.6 * n)]
        cut = int(rng.choice(loud)) if loud.size else int(0.4 * n)
        y[cut:] = 0.0 if rng.random() < 0.75 else rng.standard_normal(n - cut) * _lin(-rng.uniform(75, 90))
        return y, {"end": cut / n}
    if defect == "stuck_tone":
        f = float(np.exp(rng.uniform(np.log(100), np.log(min(4000, 0.4 * sr)))))
        tone = np.sin(2 * np.pi * f * _t(n, sr)) * peak * rng.uniform(0.3, 0.9)
        start = 0 if rng.random() < 0.5 else int(rng.uniform(0.1, 0.3) * n)
        y[start:] = tone[start:] + 0.02 * y[start:]
        return y, {"freq": f, "start": start / n}
    if defect == "clicks":
        count = int(rng.integers(1, 15))
        shape = str(rng.choice(["spike", "spike", "bump", "decay"]))
        amp = rng.uniform(0.3, 0.9)
        spots = rng.integers(int(0.05 * n), int(0.95 * n), count)
        for at in spots:
            sign = rng.choice([-1.0, 1.0])
            if shape == "spike":
                y[at] = sign * amp
            elif shape == "bump":
                w = int(rng.integers(2, 5))
                y[at : at + w] += sign * amp * np.hanning(w + 2)[1:-1]
            else:  # a spike with a fast exponential tail (a crackle of a bad edit)
                w = int(rng.integers(3, 6))
                y[at : at + w] += sign * amp * np.exp(-np.arange(w) / 1.0)
        return np.clip(y, -1, 1), {"count": count, "shape": shape, "amp": amp}
    raise ValueError(defect)


# --- the corpus ----------------------------------------------------------------------------------

BASES = {"music": MUSIC, "sfx": SFX, "speech": SPEECH}


def defects_for(kind: str, base: str) -> tuple[str, ...]:
    out = [d for d in DEFECTS if not (kind == "sfx" and d == "broad_noise")]
    return tuple(d for d in out if d not in NOT_FOR.get(base, set()))


def _prompt(rng, kind: str, base: str) -> str:
    if kind == "music":
        return MUSIC_PROMPTS[base]
    if kind == "sfx":
        options = SFX_PROMPTS[base]
        return options[int(rng.integers(0, len(options)))]
    return "a spoken announcement"


def _level(rng, x: np.ndarray, kind: str, base: str) -> np.ndarray:
    if base in ("master", "roomtone"):
        return x  # the limiter (or the room) set it
    if kind == "speech" and rng.random() < 0.25:
        return x / max(_rms(x), 1e-9) * _lin(-rng.uniform(28, 40))  # quiet speech
    if rng.random() < 0.25:
        return x / max(_peak(x), 1e-9) * rng.uniform(0.95, 0.999)
    return x / max(_peak(x), 1e-9) * _lin(-rng.uniform(1, 18))


def make_clip(seed: int) -> Clip:
    rng = np.random.default_rng([seed, 0xB])
    kind = KINDS[seed % 3]
    rates = RATES[kind]
    sr = rates[(seed // 3) % len(rates)]
    bases = BASES[kind]
    base = list(bases)[int(rng.integers(0, len(bases)))]
    n = int(rng.uniform(1.5, 5.0) * sr)
    x = _level(rng, np.asarray(bases[base](rng, n, sr), dtype=np.float64), kind, base)
    prompt = _prompt(rng, kind, base)
    options = defects_for(kind, base)
    defect = None if rng.random() < 0.45 else options[int(rng.integers(0, len(options)))]
    params: dict = {}
    if defect is not None:
        x, params = inject(defect, x, sr, rng)
    samples = np.clip(x, -1, 1).astype(np.float32)
    if rng.random() < 0.5:
        samples = (np.round(samples * 32767) / 32767).astype(np.float32)
    if rng.random() < 0.15:
        samples = np.stack([samples, (samples * rng.uniform(0.6, 1.0)).astype(np.float32)])
    name = f"{kind}/{base}{'+' + defect if defect else ''}#{seed}"
    return Clip(name, kind, sr, samples, defect, base, seed, prompt, params)


TUNE_SEEDS = range(0, 300)
HELD_OUT_SEEDS = range(50_000, 50_300)


@lru_cache(maxsize=4)
def corpus(seeds: range) -> tuple[Clip, ...]:
    """The clips of a seed range (cached for the test session, and on disk between runs by
    tests/shared/corpus_cache.py: keyed by this file, the seeds and the Piper speech)."""
    audio, _ = piper_speech()
    return tuple(cached_corpus(sys.modules[__name__], seeds, make_clip, [audio[k] for k in sorted(audio)]))
