"""The library end to end with a real worker: categories assigned at generation time (prompt and
audio), auto model, unlisted sharing of the audio, deletion removing every stored object and
leaving a tombstone, and the backfill command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, make_key, wait_for_job


def store_dir(sound_id: str) -> Path:
    return Path(os.environ["SOUNDBOX_STORAGE_DIR"]) / "sounds" / sound_id


def generate(client, body: dict) -> dict:
    resp = client.post("/v1/generations", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(client, resp.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def music(client_module, module_worker):
    return generate(
        client_module,
        {
            "model": "music",
            "duration": 2,
            "loopable": True,
            "prompt": "upbeat electronic dance music with synth leads, 128 BPM",
        },
    )


@pytest.fixture(scope="module")
def client_module(api_url, database):
    key = make_key("library flow", "creator")
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        yield c


def test_categories_are_assigned_at_generation(client_module, music):
    sound = client_module.get(f"/v1/sounds/{music['result']['sound_id']}").json()
    names = {c["name"]: c for c in sound["categories"]}
    assert {"electronic", "fast", "loop"} <= set(names), sound["categories"]
    assert names["fast"]["value"] == 128.0 and names["loop"]["group"] == "use"
    assert len(sound["categories"]) <= 5
    assert [c["score"] for c in sound["categories"]] == sorted((c["score"] for c in sound["categories"]), reverse=True)
    assert sound["kind"] == "music" and sound["visibility"] == "private" and sound["title"] is None
    listed = client_module.get("/v1/sounds", params={"category": "electronic"}).json()["items"]
    assert sound["id"] in [s["id"] for s in listed]
    counts = {c["name"]: c["count"] for c in client_module.get("/v1/categories").json()["categories"]}
    assert counts["electronic"] >= 1 and counts["loop"] >= 1


def test_auto_voice_job_speaks_the_quoted_words(client_module, module_worker):
    job = generate(client_module, {"model": "auto", "prompt": 'an announcer says "Welcome to the arena, challenger"'})
    assert job["model"] == "voice" and job["model_choice"]["chosen"] == "voice"
    sound = client_module.get(f"/v1/sounds/{job['result']['sound_id']}").json()
    assert sound["prompt"] == "Welcome to the arena, challenger" and sound["kind"] == "speech"
    assert {"announcement", "greeting"} <= {c["name"] for c in sound["categories"]}, sound["categories"]


def test_unlisted_audio_plays_without_a_key_and_delete_leaves_a_tombstone(api_url, client_module, music):
    sound_id = music["result"]["sound_id"]
    other = make_key("someone else", "free")
    assert client_module.patch(f"/v1/sounds/{sound_id}", json={"visibility": "unlisted"}).status_code == 200
    with httpx.Client(base_url=api_url, timeout=30) as anon:
        audio = anon.get(f"/v1/sounds/{sound_id}/audio", params={"format": "flac"})
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/flac"
        assert anon.get(f"/v1/sounds/{sound_id}/peaks", params={"points": 20}).status_code == 200
        assert anon.get(f"/v1/sounds/{sound_id}/spectrogram.png").status_code == 200
    folder = store_dir(sound_id)
    assert {"audio.wav", "audio.flac", "peaks-20.json", "spectrogram.png"} <= {p.name for p in folder.iterdir()}

    assert client_module.delete(f"/v1/sounds/{sound_id}").status_code == 204
    assert not folder.exists()  # audio, converted formats, peaks and spectrogram are gone
    gone = client_module.get(f"/v1/sounds/{sound_id}")
    assert gone.status_code == 410 and gone.json()["deleted_at"]
    assert client_module.get(f"/v1/sounds/{sound_id}/audio").status_code == 410
    assert client_module.patch(f"/v1/sounds/{sound_id}", json={"title": "back"}).status_code == 410
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {other}"}) as c:
        assert c.get(f"/v1/sounds/{sound_id}").status_code == 404  # it was unlisted; now it is simply absent
        assert c.delete(f"/v1/sounds/{sound_id}").status_code == 404
    with httpx.Client(base_url=api_url, timeout=30) as anon:
        assert anon.get(f"/v1/sounds/{sound_id}/audio").status_code == 401
    job = client_module.get(f"/v1/jobs/{music['id']}").json()
    assert job["status"] == "succeeded" and job["result"]["sound_id"] == sound_id and job["result"]["deleted_at"]
    assert sound_id not in [s["id"] for s in client_module.get("/v1/sounds", params={"limit": 100}).json()["items"]]
    assert client_module.delete(f"/v1/sounds/{sound_id}").status_code == 204  # deleting again is fine


def test_backfill_categorizes_sounds_made_before(client_module, module_worker):
    from sqlalchemy import text

    from shared.infra.db import session_scope

    job = generate(client_module, {"model": "audio", "duration": 1, "prompt": "heavy rain on a tin roof with thunder"})
    sound_id = job["result"]["sound_id"]
    with session_scope() as s:  # as if it had been made before categories existed
        s.exec(text("UPDATE sounds SET categories = '[]'::jsonb WHERE id = :id").bindparams(id=uuid.UUID(sound_id)))
    assert client_module.get(f"/v1/sounds/{sound_id}").json()["categories"] == []
    done = subprocess.run(
        [sys.executable, "-m", "soundbox.cli", "library", "backfill"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("categorized ") and int(done.stdout.split()[1]) >= 1
    names = {c["name"] for c in client_module.get(f"/v1/sounds/{sound_id}").json()["categories"]}
    assert {"rain", "thunder"} <= names
