"""The full path on real components, for every model of the tiny catalog:
HTTP submit -> PostgreSQL job -> Redis/Celery -> worker process (real audiocraft / Piper) ->
quality check -> object store -> served back over HTTP."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import wait_for_job

SAMPLE_RATES = {"music": 32000, "audio": 16000, "magnet": 32000, "voice": 22050}


def wav_info(data: bytes) -> tuple[int, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnchannels(), w.getnframes()


@pytest.mark.parametrize(
    "model, body",
    [
        ("music", {"prompt": "calm acoustic guitar, folk style", "duration": 2}),
        ("audio", {"prompt": "footsteps on a wooden floor", "duration": 1.5}),
        ("magnet", {"prompt": "energetic synthwave with arpeggios", "duration": 10}),  # its fixed length
        ("voice", {"prompt": "Hello from Sound Box. This sentence is spoken by Piper."}),
    ],
)
def test_full_path(client, module_worker, model, body):
    resp = client.post("/v1/generations", json={"model": model, **body, "seed": 1234})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] == "queued" and job["model"] == model and job["priority"] == 5
    assert resp.headers["location"].endswith(f"/v1/jobs/{job['id']}")

    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and 1 <= done["attempts"] <= 3
    assert done["started_at"] and done["finished_at"] and done["error"] is None
    result = done["result"]
    assert result["sample_rate"] == SAMPLE_RATES[model]
    q = result["quality"]
    assert 0 <= q["score"] <= 100 and isinstance(q["is_good"], bool)
    assert all({"code", "severity", "value", "threshold", "message"} <= set(i) for i in q["issues"])
    # every attempt is on the job; the kept one is the result; a bad result says it was kept anyway
    history = done["attempt_history"]
    assert [a["attempt"] for a in history] == list(range(1, done["attempts"] + 1))
    assert [a["seed"] for a in history] == [1234 + i for i in range(done["attempts"])]
    (kept,) = [a for a in history if a["kept"]]
    assert kept["score"] == q["score"] and kept["issues"] == q["issues"] and kept["is_good"] == q["is_good"]
    if q["is_good"]:
        assert kept is history[-1] and not q["accepted_anyway"] and q["note"] is None
    else:  # no attempt passed: all of them were made, the best one kept, and the result says so
        assert done["attempts"] == 3 and not any(a["is_good"] for a in history)
        assert kept["score"] == max(a["score"] for a in history)
        assert q["accepted_anyway"] and "kept anyway" in q["note"]

    audio = client.get(result["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    rate, channels, frames = wav_info(audio.content)
    assert rate == SAMPLE_RATES[model] and channels == 1
    if model == "voice":
        assert frames / rate > 1.5  # two sentences of speech
        assert result["duration"] == pytest.approx(frames / rate, abs=0.01)
    else:
        assert frames / rate == pytest.approx(body["duration"], abs=0.02)
        assert result["duration"] == pytest.approx(body["duration"], abs=0.02)

    png = client.get(result["spectrogram_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

    sound = client.get(f"/v1/sounds/{result['sound_id']}").json()
    assert sound["job_id"] == job["id"] and sound["model"] == model and sound["prompt"] == body["prompt"]
    assert sound["quality"] == q


def test_range_requests_and_loopable(client, module_worker):
    job = client.post(
        "/v1/generations",
        json={"model": "music", "prompt": "ambient pad loop", "duration": 2, "loopable": True, "seed": 7},
    ).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["params"]["loopable"] is True
    sound = client.get(f"/v1/sounds/{done['result']['sound_id']}").json()
    assert sound["loopable"] is True and sound["duration"] == pytest.approx(2.0, abs=0.02)

    url = done["result"]["audio_url"]
    full = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == full[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(full)}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full[-10:]
    bad = client.get(url, headers={"Range": f"bytes={len(full) + 5}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(full)}"
    for ignored in ("items=0-1", "bytes=²-", "bytes=abc"):  # another unit or no byte range: the whole body
        whole = client.get(url, headers={"Range": ignored.encode()})  # bytes: "²" goes out as UTF-8
        assert whole.status_code == 200 and whole.content == full, ignored
    # played in a loop, the end flows into the start: the wrap is no bigger a step than usual
    samples = np.frombuffer(full[44:], dtype="<i2").astype(np.float64)
    assert abs(samples[0] - samples[-1]) <= np.percentile(np.abs(np.diff(samples)), 99)


def test_list_filters_and_pagination(client, module_worker):
    ids = [
        client.post(
            "/v1/generations", json={"model": "audio", "prompt": f"door creak number {i}", "duration": 1}
        ).json()["id"]
        for i in range(3)
    ]
    for job_id in ids:
        wait_for_job(client, job_id)
    seen, cursor = [], None
    while True:
        page = client.get("/v1/jobs", params={"model": "audio", "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200
        body = page.json()
        assert all(j["model"] == "audio" for j in body["items"]) and len(body["items"]) <= 2
        seen += [j["id"] for j in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    created = [client.get(f"/v1/jobs/{i}").json()["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)
    succeeded = client.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()["items"]
    assert set(ids) <= {j["id"] for j in succeeded}


def test_models_report_loaded_state(client, module_worker):
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = {m["id"]: m["state"] for m in client.get("/v1/models").json()["models"]}
        if states["music"] == "loaded":
            break
        time.sleep(1)
    assert states["music"] == "loaded"


def test_cancel_finished_job_is_409(client, module_worker):
    job = client.post("/v1/generations", json={"model": "voice", "prompt": "Short and sweet."}).json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    resp = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert resp.status_code == 409 and "finished" in resp.json()["detail"]


def test_no_attempt_passes_keeps_the_best_and_says_so(client, module_worker):
    # The tiny catalog's music model makes noise: honest noise fails a music quality check.
    job = client.post(
        "/v1/generations", json={"model": "music", "prompt": "solo piano nocturne", "duration": 1.5, "seed": 99}
    ).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded" and done["error"] is None, done
    history = done["attempt_history"]
    assert done["attempts"] == 3 and len(history) == 3
    assert all(not a["is_good"] and a["issues"] and a["score"] < 50 and a["kind"] == "music" for a in history)
    assert [a["seed"] for a in history] == [99, 100, 101]
    best = max(history, key=lambda a: a["score"])
    assert [a["attempt"] for a in history if a["kept"]] == [best["attempt"]]
    q = done["result"]["quality"]
    assert q["accepted_anyway"] is True and q["is_good"] is False and q["score"] == best["score"]
    sound = client.get(f"/v1/sounds/{done['result']['sound_id']}").json()
    assert sound["quality"] == q
    assert client.get("/v1/jobs", params={"model": "music", "limit": 5}).json()["items"][0]["attempt_history"]


def _storage_dir():
    import os
    from pathlib import Path

    return Path(os.environ["SOUNDBOX_STORAGE_DIR"])


def test_audio_in_every_format_with_ranges_and_caching(client, module_worker):
    prompt = "Footsteps on a wooden floor, café ambience"
    done = wait_for_job(
        client,
        client.post("/v1/generations", json={"model": "audio", "prompt": prompt, "duration": 1.5, "seed": 5}).json()[
            "id"
        ],
    )
    assert done["status"] == "succeeded", done
    sound_id, url = done["result"]["sound_id"], done["result"]["audio_url"]
    expected = {
        "wav": "audio/wav",
        "flac": "audio/flac",
        "mp3": "audio/mpeg",
        "ogg": "audio/ogg",
        "opus": "audio/ogg; codecs=opus",
    }
    for fmt, media_type in expected.items():
        resp = client.get(url, params={"format": fmt})
        assert resp.status_code == 200 and resp.headers["content-type"] == media_type, (fmt, resp.text)
        disposition = resp.headers["content-disposition"]
        assert (
            f'filename="footsteps-on-a-wooden-floor-cafe-ambience-{sound_id.replace("-", "")[:8]}.{fmt}"' in disposition
            and "filename*=UTF-8''footsteps-on-a-wooden-floor-caf%C3%A9-ambience" in disposition
        )
        assert resp.headers["etag"] == f'"{sound_id}-{fmt}"' and "immutable" in resp.headers["cache-control"]
        assert resp.headers["accept-ranges"] == "bytes" and resp.headers["vary"] == "Accept"
        audio, rate = sf.read(io.BytesIO(resp.content), dtype="float32", always_2d=True)
        assert rate == 16000 and audio.shape[0] / rate == pytest.approx(1.5, abs=0.1)
        part = client.get(url, params={"format": fmt}, headers={"Range": "bytes=10-109"})
        assert part.status_code == 206 and part.content == resp.content[10:110]
        assert part.headers["content-range"] == f"bytes 10-109/{len(resp.content)}"
        assert client.get(url, params={"format": fmt}).content == resp.content
        assert (
            client.get(url, params={"format": fmt}, headers={"If-None-Match": resp.headers["etag"]}).status_code == 304
        )
        if fmt != "wav":  # converted once, kept beside the WAV
            assert (_storage_dir() / "sounds" / sound_id / f"audio.{fmt}").is_file()

    def via_accept(accept: str, **params):
        return client.get(url, params=params, headers={"Accept": accept})

    assert via_accept("audio/mpeg").headers["content-type"] == "audio/mpeg"
    assert via_accept("audio/ogg; codecs=opus").headers["content-type"] == "audio/ogg; codecs=opus"
    assert via_accept("audio/opus;q=0.5, audio/flac").headers["content-type"] == "audio/flac"
    assert via_accept("audio/mpeg", format="flac").headers["content-type"] == "audio/flac"  # ?format= wins
    assert via_accept("*/*").headers["content-type"] == "audio/wav"
    refused = via_accept("text/html")
    assert refused.status_code == 406 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["supported"] == ["wav", "flac", "mp3", "ogg", "opus"]
    unknown = client.get(url, params={"format": "aiff"})
    assert unknown.status_code == 422 and unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["errors"][0]["field"] == "format" and "mp3, ogg, opus" in unknown.json()["detail"]


def test_peaks_and_spectrogram_caching(client, module_worker):
    done = wait_for_job(
        client,
        client.post("/v1/generations", json={"model": "voice", "prompt": "Peaks for a waveform view."}).json()["id"],
    )
    assert done["status"] == "succeeded", done
    sound_id = done["result"]["sound_id"]
    wav, rate = sf.read(io.BytesIO(client.get(done["result"]["audio_url"]).content), dtype="float32")
    resp = client.get(f"/v1/sounds/{sound_id}/peaks", params={"points": 200})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["points"] == 200 and len(body["peaks"]) == 200 and body["sample_rate"] == rate == 22050
    assert body["duration"] == pytest.approx(wav.size / rate, abs=1e-3) and body["channels"] == 1
    assert all(-1 <= lo <= hi <= 1 for lo, hi in body["peaks"])
    assert max(hi for _, hi in body["peaks"]) == pytest.approx(wav.max(), abs=1e-3)
    assert min(lo for lo, _ in body["peaks"]) == pytest.approx(wav.min(), abs=1e-3)
    assert (_storage_dir() / "sounds" / sound_id / "peaks-200.json").is_file()
    etag = resp.headers["etag"]
    assert (
        client.get(f"/v1/sounds/{sound_id}/peaks", params={"points": 200}, headers={"If-None-Match": etag}).status_code
        == 304
    )
    assert len(client.get(f"/v1/sounds/{sound_id}/peaks").json()["peaks"]) == 1000  # the default
    for bad in (0, 10001, "many"):
        r = client.get(f"/v1/sounds/{sound_id}/peaks", params={"points": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "points", bad

    url = done["result"]["spectrogram_url"]
    png = client.get(url)
    etag = png.headers["etag"]
    assert png.status_code == 200 and "immutable" in png.headers["cache-control"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(url, headers={"If-None-Match": header})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
