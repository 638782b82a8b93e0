"""Streamable audio encoders: feed float32 chunks, get bytes to send at once.

The concatenation of everything one encoder returns is a valid file a standard decoder reads:

- ``wav``: a RIFF header whose sizes say "unknown" (0xFFFFFFFF, as OpenAI's streamed WAV does),
  then 16-bit PCM at the voice's rate;
- ``pcm``: raw 16-bit little-endian mono at 24 kHz, OpenAI's rate (resampled when the voice's
  rate differs);
- ``mp3`` (LAME), ``opus`` (Ogg Opus, 24 kHz) and ``flac``: encoded incrementally with PyAV;
  each chunk's packets are sent as soon as the encoder has them.
"""

from __future__ import annotations

import io
import struct
import wave
from abc import ABC, abstractmethod
from fractions import Fraction

import numpy as np

FORMATS = ("wav", "mp3", "flac", "opus", "pcm")
MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "opus": "audio/ogg; codecs=opus",
    "pcm": "audio/pcm",
}
PCM_RATE = 24000  # OpenAI's pcm: 24 kHz, 16-bit signed little-endian, mono
_UNKNOWN = 0xFFFFFFFF


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (Piper's own scaling)."""
    return np.clip(np.asarray(samples, dtype=np.float32) * 32767.0, -32767.0, 32767.0).astype("<i2")


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A complete 16-bit mono WAV file with exact sizes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(to_int16(samples).tobytes())
    return buf.getvalue()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length."""
    return (
        b"RIFF"
        + struct.pack("<I", _UNKNOWN)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", _UNKNOWN)
    )


class StreamEncoder(ABC):
    """Encode one stream. Not thread-safe: call from one thread at a time (any thread)."""

    media_type: str
    sample_rate: int  # of the encoded output

    @abstractmethod
    def encode(self, samples: np.ndarray) -> bytes:
        """Bytes ready to send after these float32 mono samples (may be empty)."""

    @abstractmethod
    def finish(self) -> bytes:
        """The rest of the stream (encoder delay, trailers)."""


class WavEncoder(StreamEncoder):
    media_type = MEDIA_TYPES["wav"]

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self._header = streaming_wav_header(sample_rate)

    def encode(self, samples: np.ndarray) -> bytes:
        head, self._header = self._header, b""
        return head + to_int16(samples).tobytes()

    def finish(self) -> bytes:
        head, self._header = self._header, b""
        return head


class PcmEncoder(StreamEncoder):
    """Raw s16le mono at :data:`PCM_RATE`; a stateful resampler keeps chunk edges seamless."""

    media_type = MEDIA_TYPES["pcm"]

    def __init__(self, sample_rate: int, out_rate: int = PCM_RATE):
        self.in_rate, self.sample_rate = sample_rate, out_rate
        self._resampler = None
        self._pts = 0
        if sample_rate != out_rate:
            import av

            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)

    def _frames(self, frames) -> bytes:
        return b"".join(f.to_ndarray().astype("<i2", copy=False).tobytes() for f in frames)

    def encode(self, samples: np.ndarray) -> bytes:
        pcm = to_int16(samples)
        if self._resampler is None:
            return pcm.tobytes()
        return self._frames(self._resampler.resample(_frame(pcm, self.in_rate, self._advance(pcm.size))))

    def finish(self) -> bytes:
        return b"" if self._resampler is None else self._frames(self._resampler.resample(None))

    def _advance(self, n: int) -> int:
        pts, self._pts = self._pts, self._pts + n
        return pts


class _Sink:
    """A write-only, non-seekable file for PyAV's muxer: what it writes waits here to be sent."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class AvEncoder(StreamEncoder):
    """mp3 / Ogg Opus / FLAC through PyAV (FFmpeg), muxed into a non-seekable stream."""

    # format -> (container, codec, output rate (None: the input's), bit rate, muxer options)
    SPECS = {
        "mp3": ("mp3", "libmp3lame", None, 64000, {}),
        "opus": ("ogg", "libopus", 24000, 48000, {"page_duration": "20000"}),  # flush Ogg pages every 20 ms
        "flac": ("flac", "flac", None, None, {}),
    }

    def __init__(self, fmt: str, sample_rate: int):
        import av

        container, codec, rate, bit_rate, options = self.SPECS[fmt]
        self.media_type = MEDIA_TYPES[fmt]
        self.in_rate = sample_rate
        self.sample_rate = rate or sample_rate
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format=container, options=options)
        stream = self._container.add_stream(codec, rate=self.sample_rate, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        self._stream = stream
        if bit_rate:
            self._stream.bit_rate = bit_rate
        self._pts = 0
        self._closed = False

    def encode(self, samples: np.ndarray) -> bytes:
        pcm = to_int16(samples)
        frame = _frame(pcm, self.in_rate, self._pts)
        self._pts += pcm.size
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        if not self._closed:
            self._closed = True
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        return self._sink.drain()


def _frame(pcm: np.ndarray, rate: int, pts: int):
    import av

    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


def stream_encoder(fmt: str, sample_rate: int) -> StreamEncoder:
    """A new encoder for one stream of ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "wav":
        return WavEncoder(sample_rate)
    if fmt == "pcm":
        return PcmEncoder(sample_rate)
    if fmt in AvEncoder.SPECS:
        return AvEncoder(fmt, sample_rate)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def encode_all(fmt: str, chunks, sample_rate: int) -> bytes:
    """Encode an iterable of chunks into one complete stream."""
    encoder = stream_encoder(fmt, sample_rate)
    return b"".join([*(encoder.encode(c) for c in chunks), encoder.finish()])
