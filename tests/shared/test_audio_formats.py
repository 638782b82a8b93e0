"""shared.audio.formats and shared.audio.peaks: conversions that really decode back, content
negotiation, download names, converted-once caching and waveform peaks."""

from __future__ import annotations

import io
import threading
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

from shared.audio import formats, peaks
from shared.audio.io import encode_wav
from shared.infra.storage import LocalObjectStore

RATES = (16000, 22050, 32000, 44100, 48000)


def tone_wav(sr: int, seconds: float = 1.5, channels: int = 1, freq: float = 440.0) -> bytes:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.4 * np.sin(2 * np.pi * freq * t) * np.minimum(1, t / 0.01)
    return encode_wav(np.stack([x] * channels) if channels > 1 else x, sr)


def dominant_hz(audio: np.ndarray, sr: int) -> float:
    mono = audio.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    return float(np.argmax(spectrum) * sr / mono.size)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("fmt", ["flac", "mp3", "ogg", "opus"])
def test_every_format_decodes_back_to_the_same_sound(fmt, sr):
    wav = tone_wav(sr, channels=2 if sr == 44100 else 1)
    data = formats.convert(wav, fmt)
    assert data and data != wav
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    # Opus runs at 8/12/16/24/48 kHz: the next rate up
    expected_rate = min(r for r in formats.OPUS_RATES if r >= sr) if fmt == "opus" else sr
    assert rate == expected_rate
    assert audio.shape[1] == (2 if sr == 44100 else 1)
    assert audio.shape[0] / rate == pytest.approx(1.5, abs=0.08)  # mp3/opus pad a little
    assert dominant_hz(audio, rate) == pytest.approx(440, abs=5)
    if fmt == "flac":  # lossless
        original, _ = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        np.testing.assert_array_equal(audio, original)


def test_container_signatures():
    wav = tone_wav(32000)
    assert formats.convert(wav, "wav") is wav
    assert formats.convert(wav, "flac")[:4] == b"fLaC"
    assert formats.convert(wav, "ogg")[:4] == b"OggS" and b"vorbis" in formats.convert(wav, "ogg")[:64]
    assert b"OpusHead" in formats.convert(wav, "opus")[:64]
    mp3 = formats.convert(wav, "mp3")
    assert mp3[:3] == b"ID3" or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0)


def test_unknown_format_lists_the_supported_ones():
    with pytest.raises(formats.UnsupportedFormat, match="wav, flac, mp3, ogg, opus"):
        formats.check_format("aiff")
    assert formats.check_format("MP3").name == "mp3" and formats.check_format(".ogg").name == "ogg"


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, "wav"),
        ("", "wav"),
        ("*/*", "wav"),
        ("audio/*", "wav"),
        ("audio/mpeg", "mp3"),
        ("audio/flac", "flac"),
        ("audio/x-flac", "flac"),
        ("audio/ogg", "ogg"),
        ("audio/ogg; codecs=opus", "opus"),
        ("audio/opus", "opus"),
        ("audio/wav", "wav"),
        ("audio/opus;q=0.4, audio/mpeg;q=0.8", "mp3"),
        ("audio/flac;q=0.2, audio/*;q=0.5", "wav"),
        ("audio/webm, audio/ogg, audio/*;q=0.9", "ogg"),
        ("text/html, */*;q=0.1", "wav"),
        ("text/html", None),
        ("audio/webm", None),
        ("audio/mpeg;q=0", None),
    ],
)
def test_negotiation(accept, expected):
    assert formats.negotiate(accept) == expected


def test_download_names_are_friendly_and_safe():
    sid = "1a2b3c4d-5e6f-7a8b-9c0d-112233445566"
    value = formats.content_disposition('Calm "acoustic" guitar; folk/style\r\n!', sid, "mp3")
    assert value.startswith('inline; filename="calm-acoustic-guitar-folk-style-1a2b3c4d.mp3";')
    assert "\r" not in value and "\n" not in value and value.count('"') == 2
    unicode = formats.content_disposition("Café au lait, 日本の歌", sid, "flac")
    ascii_name = unicode.split('filename="')[1].split('"')[0]
    assert ascii_name == "cafe-au-lait-1a2b3c4d.flac" and ascii_name.isascii()
    assert unquote(unicode.split("filename*=UTF-8''")[1]) == "café-au-lait-日本の歌-1a2b3c4d.flac"
    assert formats.download_name("!!!", sid, "ogg") == "soundbox-1a2b3c4d.ogg"
    assert len(formats.download_name("word " * 100, sid, "wav")) <= formats.SLUG_MAX + 14


def test_converted_once_and_cached_beside_the_wav(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    store.put("sounds/abc/audio.wav", tone_wav(22050))
    calls = []
    real = formats.convert
    monkeypatch.setattr(formats, "convert", lambda wav, fmt: calls.append(fmt) or real(wav, fmt))
    keys = []
    threads = [
        threading.Thread(target=lambda: keys.append(formats.ensure_format(store, "sounds/abc/audio.wav", "mp3")))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(keys) == {"sounds/abc/audio.mp3"} and calls == ["mp3"]
    assert formats.ensure_format(store, "sounds/abc/audio.wav", "mp3") == "sounds/abc/audio.mp3" and calls == ["mp3"]
    assert formats.ensure_format(store, "sounds/abc/audio.wav", "wav") == "sounds/abc/audio.wav"
    assert sf.info(io.BytesIO(store.get("sounds/abc/audio.mp3"))).format == "MP3"


# --- peaks -----------------------------------------------------------------------------------------


def test_peaks_match_a_direct_computation():
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, size=(10007, 2)).astype(np.float32)
    got = np.array(peaks.compute_peaks(audio, 100))
    edges = (np.arange(101) * 10007) // 100
    for i in range(100):
        span = audio[edges[i] : edges[i + 1]]
        assert got[i, 0] == pytest.approx(span.min(), abs=1e-4) and got[i, 1] == pytest.approx(span.max(), abs=1e-4)


def test_peaks_edge_cases():
    assert peaks.compute_peaks(np.array([0.1, -0.2, 0.3], dtype=np.float32), 10) == [
        [0.1, 0.1],
        [-0.2, -0.2],
        [0.3, 0.3],
    ]
    assert peaks.compute_peaks(np.zeros(0, dtype=np.float32), 5) == []
    with pytest.raises(ValueError):
        peaks.compute_peaks(np.zeros(10, dtype=np.float32), 0)


def test_peaks_document_and_cache(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("sounds/abc/audio.wav", tone_wav(16000, seconds=2.0))
    import json

    body = json.loads(peaks.ensure_peaks(store, "sounds/abc/audio.wav", 50))
    assert body["points"] == 50 and body["sample_rate"] == 16000 and body["duration"] == 2.0
    assert body["channels"] == 1 and len(body["peaks"]) == 50
    assert all(-1 <= lo <= hi <= 1 for lo, hi in body["peaks"])
    assert max(hi for _, hi in body["peaks"]) == pytest.approx(0.4, abs=0.01)
    assert store.exists("sounds/abc/peaks-50.json")
    with pytest.raises(ValueError):
        peaks.ensure_peaks(store, "sounds/abc/audio.wav", peaks.MAX_POINTS + 1)
