"""Seamless loops: crossfade a clip's tail into its head.

The output is shorter than the input by the fade length F. Its head is an equal-power blend
that starts on ``x[N-F]`` and ends on ``x[F-1]``, so when the output repeats, its last sample
``x[N-F-1]`` is followed by ``x[N-F]``: the natural continuation, with no click. Callers that
want a loop of exactly D seconds generate ``D + fade`` seconds first.
"""

from __future__ import annotations

import numpy as np

from shared.audio.io import as_channels, check_sample_rate, like_input

DEFAULT_CROSSFADE_SECONDS = 0.5


def loop_crossfade_seconds(duration: float, default: float = DEFAULT_CROSSFADE_SECONDS) -> float:
    """Crossfade length for a loop of ``duration`` seconds: ``default``, at most a quarter of it."""
    if duration < 0 or default < 0:
        raise ValueError("duration and default must be non-negative")
    return min(default, duration / 4.0)


def make_loopable(samples: np.ndarray, sample_rate: int, fade_seconds: float) -> np.ndarray:
    """Equal-power crossfade of the last ``fade_seconds`` into the start; returns N - F samples.

    ``out = x[:, :N-F]`` with ``out[:, :F] = x[:, :F] * sin(t) + x[:, N-F:] * cos(t)`` for ``t``
    running from 0 to pi/2. Raises ValueError unless the fade is shorter than half the clip.
    """
    x = as_channels(samples)
    n = x.shape[1]
    if fade_seconds < 0:
        raise ValueError("fade_seconds must be non-negative")
    fade = int(round(fade_seconds * check_sample_rate(sample_rate)))
    if fade == 0:
        return like_input(x.copy(), samples)
    if 2 * fade >= n:
        raise ValueError(f"crossfade of {fade} samples needs a clip longer than {2 * fade} samples, got {n}")

    t = np.linspace(0.0, np.pi / 2.0, fade, dtype=np.float64)
    fade_in = np.sin(t).astype(np.float32)
    fade_out = np.cos(t).astype(np.float32)

    out = x[:, : n - fade].copy()
    out[:, :fade] = x[:, :fade] * fade_in + x[:, n - fade :] * fade_out
    return like_input(out, samples)
