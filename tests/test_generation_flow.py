"""The full path on real components, for every model of the tiny catalog:
HTTP submit -> PostgreSQL job -> Redis/Celery -> worker process (real audiocraft / Piper) ->
quality check -> object store -> served back over HTTP."""

from __future__ import annotations

import io
import wave

import pytest

from tests.conftest import wait_for_job

SAMPLE_RATES = {"music": 32000, "audio": 16000, "magnet": 32000, "voice": 22050}


def wav_info(data: bytes) -> tuple[int, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnchannels(), w.getnframes()


@pytest.mark.parametrize("model, body", [
    ("music", {"prompt": "calm acoustic guitar, folk style", "duration": 2}),
    ("audio", {"prompt": "footsteps on a wooden floor", "duration": 1.5}),
    ("magnet", {"prompt": "energetic synthwave with arpeggios", "duration": 3}),
    ("voice", {"prompt": "Hello from Sound Box. This sentence is spoken by Piper."}),
])
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
    job = client.post("/v1/generations", json={"model": "music", "prompt": "ambient pad loop",
                                                "duration": 2, "loopable": True}).json()
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


def test_list_filters_and_pagination(client, module_worker):
    ids = [client.post("/v1/generations", json={"model": "audio", "prompt": f"door creak number {i}",
                                                 "duration": 1}).json()["id"] for i in range(3)]
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
