"""shared.audio.loop: equal-power tail-into-head crossfade."""

import numpy as np
import pytest

from shared.audio.loop import loop_crossfade_seconds, make_loopable

SR = 32000


def wrap_step(audio: np.ndarray) -> float:
    """Largest jump between the last and first sample when the clip repeats."""
    audio = np.atleast_2d(audio)
    return float(np.max(np.abs(audio[:, 0] - audio[:, -1])))


def typical_step(audio: np.ndarray) -> float:
    """99th percentile of the clip's sample-to-sample steps."""
    return float(np.percentile(np.abs(np.diff(np.atleast_2d(audio), axis=-1)), 99))


def test_crossfade_seconds():
    assert loop_crossfade_seconds(8.0) == 0.5
    assert loop_crossfade_seconds(1.0) == 0.25
    assert loop_crossfade_seconds(10.0, default=1.0) == 1.0
    assert loop_crossfade_seconds(0.0) == 0.0
    with pytest.raises(ValueError):
        loop_crossfade_seconds(-1.0)


@pytest.mark.parametrize("kind", ["sine", "chord"])
def test_wrap_point_is_seamless(signals, kind):
    # 2.0123 s: the sine's period does not divide the length, so a naive loop clicks; the
    # chord excerpt starts and ends mid-note.
    n = int(2.0123 * SR)
    source = signals.sine(441.0, 2.0123) if kind == "sine" else signals.chord(3.0)[1000 : 1000 + n]
    fade = 0.5
    f = int(fade * SR)
    looped = make_loopable(source, SR, fade)

    assert looped.shape == (source.size - f,) and looped.dtype == np.float32
    assert wrap_step(looped) <= typical_step(looped)
    assert wrap_step(source) > 5 * typical_step(source)  # the naive wrap is a big jump
    # The wrap continues the original: last sample x[N-F-1], then x[N-F].
    assert looped[0] == pytest.approx(source[source.size - f])
    assert looped[-1] == source[source.size - f - 1]


def test_crossfade_formula(signals):
    x = np.stack([signals.chord(1.0), signals.noise(1.0, amp=0.1)])
    n, f = x.shape[1], 3200
    out = make_loopable(x, SR, f / SR)
    t = np.linspace(0, np.pi / 2, f)
    expected_head = x[:, :f] * np.sin(t) + x[:, n - f :] * np.cos(t)
    assert out.shape == (2, n - f)
    np.testing.assert_allclose(out[:, :f], expected_head, atol=1e-6)
    np.testing.assert_array_equal(out[:, f:], x[:, f : n - f])


def test_equal_power_keeps_level_of_uncorrelated_material(signals):
    noise = signals.noise(4.0, amp=0.2, seed=3)
    f = SR // 2
    out = make_loopable(noise, SR, 0.5)
    fade_rms = np.sqrt(np.mean(out[:f] ** 2))
    body_rms = np.sqrt(np.mean(out[f:] ** 2))
    assert abs(20 * np.log10(fade_rms / body_rms)) < 0.5


def test_zero_fade_returns_a_copy(signals):
    x = signals.sine(seconds=1.0)
    out = make_loopable(x, SR, 0.0)
    np.testing.assert_array_equal(out, x)
    assert out is not x


@pytest.mark.parametrize("fade", [0.5, 0.6, -0.1])
def test_fade_must_be_shorter_than_half_the_clip(signals, fade):
    with pytest.raises(ValueError):
        make_loopable(signals.sine(seconds=1.0), SR, fade)
