"""Audio array conventions and WAV encode/decode.

Every function in :mod:`shared.audio` takes float32 samples shaped ``(channels, n)``; a 1-D
array is accepted as mono ``(1, n)``. Functions that return audio keep the caller's layout
(1-D in, 1-D out; 2-D in, 2-D out).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

# More "channels" than this almost certainly means a (n, channels) array was passed.
MAX_CHANNELS = 64


def as_channels(samples: np.ndarray) -> np.ndarray:
    """Return ``samples`` as a contiguous float32 ``(channels, n)`` array (no copy if possible)."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    elif arr.ndim != 2:
        raise ValueError(f"expected audio shaped (channels, n) or (n,), got shape {arr.shape}")
    if arr.shape[0] > MAX_CHANNELS:
        raise ValueError(f"audio has {arr.shape[0]} channels; expected (channels, n) - was (n, channels) passed?")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"audio must be floating point in [-1, 1], got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def like_input(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Give a ``(channels, n)`` result the layout of the caller's input (1-D stays 1-D)."""
    return result[0] if np.ndim(original) == 1 else result


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mix audio to a 1-D float32 signal (channel mean); NaN becomes 0 and ±inf ±1."""
    mono = as_channels(samples).mean(axis=0, dtype=np.float32)
    if not np.isfinite(mono).all():
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    return mono


def check_sample_rate(sample_rate: int) -> int:
    """Validate a sample rate and return it as an int."""
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def duration_seconds(samples: np.ndarray, sample_rate: int) -> float:
    """Length of the audio in seconds."""
    return as_channels(samples).shape[1] / check_sample_rate(sample_rate)


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """Encode audio as a 16-bit PCM WAV file (samples are clipped to [-1, 1])."""
    import soundfile as sf

    audio = np.clip(as_channels(samples), -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, check_sample_rate(sample_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(data: bytes | str | Path) -> tuple[np.ndarray, int]:
    """Decode any format libsndfile reads (bytes or a path) to ``((channels, n) float32, rate)``.

    Raises FileNotFoundError for a missing path and ValueError for undecodable data.
    """
    import soundfile as sf

    source: io.BytesIO | Path
    if isinstance(data, (bytes, bytearray, memoryview)):
        source = io.BytesIO(data)
    else:
        source = Path(data)
        if not source.is_file():
            raise FileNotFoundError(f"no such audio file: {source}")
    try:
        audio, sample_rate = sf.read(source, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise ValueError(f"cannot decode audio: {exc}") from exc
    return np.ascontiguousarray(audio.T), int(sample_rate)
