"""shared.audio.loudness: BS.1770 loudness normalization with a true-peak ceiling."""

import numpy as np
import pytest

from shared.audio.loudness import integrated_loudness, normalize_loudness, true_peak_dbtp

SR = 32000
TP_TOLERANCE = 0.05  # dB


def test_reference_sine_loudness(signals):
    # BS.1770: a 0 dBFS 997 Hz sine in one channel measures -3.01 LUFS.
    reference = signals.sine(997.0, 5.0, amp=1.0)
    assert integrated_loudness(reference, SR) == pytest.approx(-3.01, abs=0.1)


def test_true_peak_sees_inter_sample_peaks(signals):
    # A sine at fs/4 with a 45 degree phase: samples sit at 0.707, the waveform peaks at 1.0.
    # Short tapers keep the abrupt start and end from overshooting (a real, but different, peak).
    from scipy.signal.windows import tukey

    tone = signals.sine(SR / 4, 1.0, amp=1.0, phase=np.pi / 4)
    tone = (tone * tukey(tone.size, alpha=0.02)).astype(np.float32)
    assert 20 * np.log10(np.max(np.abs(tone))) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(tone, SR) == pytest.approx(0.0, abs=0.05)
    assert true_peak_dbtp(np.zeros(100), SR) == -np.inf


@pytest.mark.parametrize("amp", [0.01, 0.15, 0.5])
def test_quiet_and_loud_reach_target(signals, amp):
    audio = signals.chord(4.0, amp=amp)
    out = normalize_loudness(audio, SR)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert integrated_loudness(out, SR) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbtp(out, SR) <= -1.0 + TP_TOLERANCE
    assert np.max(np.abs(out)) < 1.0


def test_stereo_keeps_channel_balance(signals):
    audio = np.stack([signals.chord(4.0, amp=0.02), signals.chord(4.0, amp=0.01)])
    out = normalize_loudness(audio, SR)
    assert out.shape == (2, audio.shape[1])
    assert integrated_loudness(out, SR) == pytest.approx(-14.0, abs=0.5)
    np.testing.assert_allclose(out[1] * 2, out[0], atol=1e-6)


def test_peak_ceiling_wins_over_loudness_target(signals):
    # Sparse loud clicks: reaching -14 LUFS would need peaks far above 0 dBFS.
    clicks = signals.clicks(4.0, every=8000, amp=0.3)
    out = normalize_loudness(clicks, SR, target_lufs=-14.0, true_peak_dbtp=-1.0)
    assert true_peak_dbtp(out, SR) == pytest.approx(-1.0, abs=TP_TOLERANCE)
    assert integrated_loudness(out, SR) < -14.5
    assert np.max(np.abs(out)) < 1.0


def test_custom_target_and_ceiling(signals):
    out = normalize_loudness(signals.chord(4.0), SR, target_lufs=-23.0, true_peak_dbtp=-2.0)
    assert integrated_loudness(out, SR) == pytest.approx(-23.0, abs=0.5)
    assert true_peak_dbtp(out, SR) <= -2.0 + TP_TOLERANCE


@pytest.mark.parametrize("amp", [0.0, 1e-5])
def test_silence_is_unchanged(signals, amp):
    quiet = signals.sine(seconds=2.0, amp=amp)
    assert integrated_loudness(quiet, SR) == -np.inf
    out = normalize_loudness(quiet, SR)
    np.testing.assert_array_equal(out, quiet)


def test_short_clips_keep_their_level_but_respect_the_ceiling(signals):
    short = signals.sine(seconds=0.2, amp=0.1)
    np.testing.assert_array_equal(normalize_loudness(short, SR), short)
    loud = signals.sine(seconds=0.2, amp=1.5)
    out = normalize_loudness(loud, SR)
    assert true_peak_dbtp(out, SR) == pytest.approx(-1.0, abs=TP_TOLERANCE)
    with pytest.raises(ValueError):
        integrated_loudness(short, SR)


def test_invalid_arguments(signals):
    with pytest.raises(ValueError):
        normalize_loudness(signals.chord(1.0), SR, true_peak_dbtp=0.5)
    with pytest.raises(ValueError):
        integrated_loudness(np.zeros((6, SR)), SR)
