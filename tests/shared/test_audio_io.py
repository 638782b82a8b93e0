"""shared.audio.io: array conventions and WAV encode/decode."""

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared.audio.io import (
    as_channels,
    decode_audio,
    duration_seconds,
    encode_wav,
    like_input,
    to_mono,
)

SR = 32000
LSB = 1 / 32768


def test_as_channels_accepts_mono_and_multichannel():
    assert as_channels(np.zeros(10)).shape == (1, 10)
    stereo = as_channels(np.zeros((2, 10), dtype=np.float64))
    assert stereo.shape == (2, 10) and stereo.dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 3, 4), (48000, 2)])
def test_as_channels_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        as_channels(np.zeros(shape))


def test_as_channels_rejects_integer_pcm():
    with pytest.raises(ValueError, match="floating"):
        as_channels(np.zeros(10, dtype=np.int16))


def test_like_input_keeps_layout():
    result = np.ones((1, 5), dtype=np.float32)
    assert like_input(result, np.zeros(5)).shape == (5,)
    assert like_input(result, np.zeros((1, 5))).shape == (1, 5)


def test_to_mono_mixes_and_sanitizes():
    mixed = to_mono(np.array([[1.0, 0.5, np.nan], [0.0, 0.5, 0.0]]))
    assert mixed.tolist() == [0.5, 0.5, 0.0]


def test_wav_round_trip_stereo(signals):
    audio = np.stack([signals.sine(440, 1.0), signals.chord(1.0)])
    data = encode_wav(audio, SR)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    decoded, sr = decode_audio(data)
    assert sr == SR
    assert decoded.shape == audio.shape and decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, audio, atol=LSB)
    assert sf.info(io.BytesIO(data)).subtype == "PCM_16"


def test_wav_mono_1d_decodes_as_one_channel(signals):
    decoded, sr = decode_audio(encode_wav(signals.sine(seconds=0.5, sr=16000), 16000))
    assert decoded.shape == (1, 8000) and sr == 16000


def test_encode_clips_to_full_scale():
    decoded, _ = decode_audio(encode_wav(np.array([1.5, -2.0, 0.25], dtype=np.float32), SR))
    assert decoded.max() <= 1.0 and decoded.min() >= -1.0
    np.testing.assert_allclose(decoded[0], [1.0, -1.0, 0.25], atol=LSB)


def test_decode_from_paths_and_other_formats(tmp_path, signals):
    audio = signals.chord(1.0)
    flac = tmp_path / "clip.flac"
    sf.write(flac, audio, 22050, subtype="PCM_24")
    for source in (flac, str(flac), flac.read_bytes()):
        decoded, sr = decode_audio(source)
        assert sr == 22050 and decoded.shape == (1, audio.size)
        np.testing.assert_allclose(decoded[0], audio, atol=1e-5)


def test_duration_seconds(signals):
    assert duration_seconds(signals.sine(seconds=2.5), SR) == pytest.approx(2.5)
    assert duration_seconds(np.zeros((2, 48000)), 48000) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        duration_seconds(np.zeros(10), 0)


def test_decode_errors(tmp_path):
    with pytest.raises(ValueError):
        decode_audio(b"not audio at all")
    with pytest.raises(FileNotFoundError):
        decode_audio(tmp_path / "missing.wav")


def test_paths_are_accepted_as_path_objects(tmp_path, signals):
    path = Path(tmp_path) / "a.wav"
    path.write_bytes(encode_wav(signals.sine(seconds=0.1), SR))
    assert decode_audio(path)[0].shape == (1, 3200)
