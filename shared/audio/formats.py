"""Delivery formats of a stored sound: WAV as generated, and FLAC, MP3, Ogg Vorbis and Ogg Opus
converted from it once, then kept in the object store beside the WAV.

Everything here is numpy + soundfile (libsndfile, which writes all five) + PyAV's resampler
(Opus only runs at 8/12/16/24/48 kHz), so the API process can use it: no torch, no scipy.

- :func:`negotiate` picks a format from ``?format=`` or an ``Accept`` header;
- :func:`convert` turns WAV bytes into another format;
- :func:`ensure_format` converts once per sound and format (concurrent callers share the work in
  a process; across processes and hosts the store's atomic put -- a rename, or one S3 PUT --
  makes a duplicate conversion harmless);
- :func:`content_disposition` builds a friendly, ASCII-safe download name from the prompt.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from shared.infra.storage import ObjectStore


@dataclass(frozen=True)
class AudioFormat:
    name: str  # the ?format= value and the file extension
    media_type: str  # Content-Type of the response
    sf_format: str  # libsndfile container
    sf_subtype: str  # libsndfile codec
    options: tuple[tuple[str, object], ...] = ()  # extra soundfile.write arguments


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", "audio/wav", "WAV", "PCM_16"),
        AudioFormat("flac", "audio/flac", "FLAC", "PCM_16"),
        AudioFormat(
            "mp3", "audio/mpeg", "MP3", "MPEG_LAYER_III", (("bitrate_mode", "VARIABLE"), ("compression_level", 0.3))
        ),
        AudioFormat("ogg", "audio/ogg", "OGG", "VORBIS", (("compression_level", 0.4),)),
        AudioFormat("opus", "audio/ogg; codecs=opus", "OGG", "OPUS", (("compression_level", 0.7),)),
    )
}
SUPPORTED = tuple(FORMATS)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_MAX_CHANNELS = 2

# Accept media types -> format ("audio/ogg; codecs=opus" is handled by its parameter)
MEDIA_TYPES: dict[str, str] = {
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/ogg": "ogg",
    "audio/vorbis": "ogg",
    "application/ogg": "ogg",
    "audio/opus": "opus",
}


class UnsupportedFormat(ValueError):
    """A format nobody here can produce; the message lists the supported ones."""


def check_format(name: str) -> AudioFormat:
    """The format called ``name`` (case-insensitive), or UnsupportedFormat."""
    fmt = FORMATS.get(name.strip().lower().lstrip("."))
    if fmt is None:
        raise UnsupportedFormat(f"unsupported audio format {name!r}; supported: {', '.join(SUPPORTED)}")
    return fmt


def _accept_entries(header: str) -> list[tuple[float, int, str, dict[str, str]]]:
    """(q, position, media type, parameters) of each entry of an Accept header."""
    entries = []
    for position, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for field in fields[1:]:
            if "=" in field:
                key, value = field.split("=", 1)
                params[key.strip().lower()] = value.strip().strip('"').lower()
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        entries.append((q, position, media, params))
    return entries


def negotiate(accept: str | None, default: str = "wav") -> str | None:
    """The format an ``Accept`` header asks for: the highest-q audio type we can produce.

    No header (or only wildcards) means ``default``. Returns None when the header names only
    types we cannot produce (the caller answers 406).
    """
    if not accept or not accept.strip():
        return default
    best: tuple[float, int, int] | None = None
    chosen = None
    name: str | None
    for q, position, media, params in _accept_entries(accept):
        if q <= 0:
            continue
        if media in ("*/*", "audio/*"):
            name = default
        elif media == "audio/ogg" and "opus" in params.get("codecs", ""):
            name = "opus"
        else:
            name = MEDIA_TYPES.get(media)
        if name is None:
            continue
        # the highest q wins; among equals an explicit type beats a wildcard, then the first listed
        rank = (q, 0 if media.endswith("/*") else 1, -position)
        if best is None or rank > best:
            best, chosen = rank, name
    return chosen


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(n, channels) float32 at ``rate`` -> at ``target`` with libswresample (PyAV)."""
    import av

    channels = audio.shape[1]
    layout = {1: "mono", 2: "stereo"}.get(channels)
    if layout is None:  # more channels than a simple layout: resample each on its own
        return np.stack([_resample(audio[:, c : c + 1], rate, target)[:, 0] for c in range(channels)], axis=1)
    resampler = av.AudioResampler(format="flt", layout=layout, rate=target)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.reshape(1, -1)), format="flt", layout=layout)
    frame.sample_rate = rate
    frames = resampler.resample(frame) + resampler.resample(None)
    out = np.concatenate([f.to_ndarray().reshape(-1, channels) for f in frames]) if frames else np.zeros((0, channels))
    return out.astype(np.float32, copy=False)


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode ``(n, channels)`` float32 samples in ``fmt`` (one of :data:`SUPPORTED`)."""
    import soundfile as sf

    spec = check_format(fmt)
    audio = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if audio.ndim == 1:
        audio = audio[:, np.newaxis]
    rate = sample_rate
    if spec.name == "opus" and rate not in OPUS_RATES:
        target = min(r for r in OPUS_RATES if r >= min(rate, 48000))
        audio, rate = _resample(audio, rate, target), target
    if spec.name == "mp3" and audio.shape[1] > MP3_MAX_CHANNELS:
        audio = audio.mean(axis=1, keepdims=True)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=spec.sf_format, subtype=spec.sf_subtype, **dict(spec.options))
    return buffer.getvalue()


def convert(wav: bytes, fmt: str) -> bytes:
    """Convert a stored WAV file to ``fmt``; WAV comes back as it is."""
    import soundfile as sf

    spec = check_format(fmt)
    if spec.name == "wav":
        return wav
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return encode(audio, rate, spec.name)


def format_key(audio_key: str, fmt: str) -> str:
    """The object key of a sound's audio in ``fmt``: beside the WAV (``.../audio.wav`` ->
    ``.../audio.mp3``)."""
    spec = check_format(fmt)
    base = audio_key[:-4] if audio_key.endswith(".wav") else audio_key
    return audio_key if spec.name == "wav" else f"{base}.{spec.name}"


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 1024:  # forget idle locks now and then
            for k in [k for k, lock in _locks.items() if not lock.locked()]:
                del _locks[k]
        return _locks.setdefault(key, threading.Lock())


def ensure_format(store: ObjectStore, audio_key: str, fmt: str) -> str:
    """The key of the sound in ``fmt``, converting from the WAV the first time it is asked for."""
    key = format_key(audio_key, fmt)
    if key == audio_key or store.exists(key):
        return key
    with _lock_for(key):
        if not store.exists(key):  # another thread may have converted it meanwhile
            store.put(key, convert(store.get(audio_key), fmt), FORMATS[check_format(fmt).name].media_type)
    return key


# --- download names ------------------------------------------------------------------------------

SLUG_MAX = 60


def _slug(text: str, ascii_only: bool) -> str:
    text = unicodedata.normalize("NFKD" if ascii_only else "NFC", text or "")
    if ascii_only:
        text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w]+" if not ascii_only else r"[^A-Za-z0-9]+", "-", text.lower()).strip("-_")
    text = re.sub(r"[-_]{2,}", "-", text)
    if len(text) > SLUG_MAX:
        text = text[:SLUG_MAX].rsplit("-", 1)[0] or text[:SLUG_MAX]
    return text.strip("-_")


def download_name(prompt: str, sound_id: str, ext: str, ascii_only: bool = True) -> str:
    """``calm-acoustic-guitar-1a2b3c4d.mp3``: the prompt as a slug, the sound id's first 8 hex
    digits (takes of one prompt stay apart), the extension."""
    short = str(sound_id).replace("-", "")[:8]
    slug = _slug(prompt, ascii_only)
    return f"{slug}-{short}.{ext}" if slug else f"soundbox-{short}.{ext}"


def content_disposition(prompt: str, sound_id: str, ext: str, disposition: str = "inline") -> str:
    """``inline; filename="<ascii name>"; filename*=UTF-8''<utf-8 name>`` (RFC 6266 / 5987)."""
    ascii_name = download_name(prompt, sound_id, ext, ascii_only=True)
    utf8_name = download_name(prompt, sound_id, ext, ascii_only=False)
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(utf8_name, safe='')}"
