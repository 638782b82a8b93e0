"""The service on an S3 bucket, as on many hosts: two real worker processes (each with a storage
folder of its own, as if on two machines) write to one bucket on a real moto server; the API
(a third folder) serves every result from it -- streamed with Range and conversions, or as
presigned redirects -- and nobody's local folder gets a byte. An outage of the store is a 503
with Retry-After; a missing object a 404."""

from __future__ import annotations

import io
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from shared.infra.storage import sound_keys
from tests.conftest import Workers, db_job, make_key, start_api, wait_for_job
from tests.s3.conftest import S3Server

PREFIX = "prod"


@dataclass
class Stack:
    s3: S3Server
    bucket: str
    env: dict[str, str]
    api: str
    key: str
    dirs: dict[str, Path]
    worker_names: dict[str, str]  # queues -> worker name
    jobs: list[dict] = field(default_factory=list)

    def client(self, api: str | None = None, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=api or self.api, timeout=60, headers={"Authorization": f"Bearer {key or self.key}"}
        )

    def object(self, key: str) -> bytes:
        return self.s3.client().get_object(Bucket=self.bucket, Key=f"{PREFIX}/{key}")["Body"].read()

    def has(self, key: str) -> bool:
        listed = self.s3.client().list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}/{key}")
        return any(o["Key"] == f"{PREFIX}/{key}" for o in listed.get("Contents", []))


def local_files(*dirs: Path) -> list[Path]:
    return [p for d in dirs if d.exists() for p in d.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def stack(database, redis_client, s3_server, tmp_path_factory):
    bucket = s3_server.bucket()
    env = s3_server.env(bucket, PREFIX)
    dirs = {name: tmp_path_factory.mktemp(name) / "storage" for name in ("api", "host-a", "host-b", "api-redirect")}
    api, api_proc = start_api({**env, "SOUNDBOX_STORAGE_DIR": str(dirs["api"])})
    workers = Workers(redis_client)
    try:
        names = {}
        for queues, host in (("music", "host-a"), ("audio,voice", "host-b")):
            proc = workers.start(queues, env={**env, "SOUNDBOX_STORAGE_DIR": str(dirs[host])}, timeout=300)
            names[queues] = f"{socket.gethostname()}:{proc.pid}"
        yield Stack(s3_server, bucket, env, api, make_key("s3 stack", "creator"), dirs, names)
    finally:
        workers.stop_all()
        api_proc.terminate()
        api_proc.wait(10)


@pytest.fixture(scope="module")
def sounds(stack):
    """Two jobs for each host's queue, all finished."""
    with stack.client() as c:
        ids = []
        for model, prompt in (
            ("music", "warm synth pad"),
            ("audio", "rain on a tin roof"),
            ("music", "slow piano chords"),
            ("audio", "door creaking open"),
        ):
            resp = c.post("/v1/generations", json={"model": model, "prompt": prompt, "duration": 1, "seed": 7})
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
        for job_id in ids:
            job = wait_for_job(c, job_id, timeout=300)
            assert job["status"] == "succeeded", job
            stack.jobs.append(job)
    return stack.jobs


def test_generation_path_through_the_bucket(stack, sounds):
    with stack.client() as c:
        for job in sounds:
            sound_id = job["result"]["sound_id"]
            audio_key, spectrogram_key = sound_keys(sound_id)
            wav = stack.object(audio_key)  # the worker put it in the bucket, under the prefix
            assert wav[:4] == b"RIFF" and sf.info(io.BytesIO(wav)).samplerate == job["result"]["sample_rate"]

            audio = c.get(job["result"]["audio_url"])
            assert audio.status_code == 200 and audio.content == wav
            assert audio.headers["content-type"] == "audio/wav" and audio.headers["accept-ranges"] == "bytes"
            part = c.get(job["result"]["audio_url"], headers={"Range": "bytes=100-1099"})
            assert part.status_code == 206 and part.content == wav[100:1100]
            assert part.headers["content-range"] == f"bytes 100-1099/{len(wav)}"
            etag = audio.headers["etag"]
            assert c.get(job["result"]["audio_url"], headers={"If-None-Match": etag}).status_code == 304

            spectrogram = c.get(job["result"]["spectrogram_url"])
            assert spectrogram.status_code == 200 and spectrogram.content == stack.object(spectrogram_key)

            # conversions and peaks are made once by the API and kept in the bucket
            assert not stack.has(f"sounds/{sound_id}/audio.ogg")
            ogg = c.get(job["result"]["audio_url"], params={"format": "ogg"})
            assert ogg.status_code == 200 and ogg.headers["content-type"] == "audio/ogg"
            assert ogg.content == stack.object(f"sounds/{sound_id}/audio.ogg")
            decoded, rate = sf.read(io.BytesIO(ogg.content))
            assert rate == job["result"]["sample_rate"] and abs(len(decoded) / rate - 1.0) < 0.1
            tail = c.get(job["result"]["audio_url"], params={"format": "ogg"}, headers={"Range": "bytes=-64"})
            assert tail.status_code == 206 and tail.content == ogg.content[-64:]
            got = c.get(f"/v1/sounds/{sound_id}/peaks", params={"points": 40})
            assert got.status_code == 200 and len(got.json()["peaks"]) == 40
            assert stack.has(f"sounds/{sound_id}/peaks-40.json")


def test_many_hosts_share_only_the_bucket(stack, sounds):
    """Each host's worker made some of the results; the API served all of them (above); no
    process wrote anything to its local storage folder."""
    made_by = {db_job(job["id"]).worker for job in sounds}
    assert made_by == set(stack.worker_names.values())
    assert local_files(*stack.dirs.values()) == []
    keys = [o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=stack.bucket)["Contents"]]
    for job in sounds:
        audio_key, spectrogram_key = sound_keys(job["result"]["sound_id"])
        assert f"{PREFIX}/{audio_key}" in keys and f"{PREFIX}/{spectrogram_key}" in keys
    assert all(k.startswith(f"{PREFIX}/") for k in keys)


@pytest.fixture(scope="module")
def redirect_api(stack):
    url, proc = start_api(
        {
            **stack.env,
            "SOUNDBOX_STORAGE_DIR": str(stack.dirs["api-redirect"]),
            "SOUNDBOX_STORAGE_SERVE": "redirect",
            "SOUNDBOX_STORAGE_PRESIGN_SECONDS": "120",
        }
    )
    yield url
    proc.terminate()
    proc.wait(10)


def test_presigned_redirects_after_the_ownership_check(stack, sounds, redirect_api):
    job = sounds[0]
    sound_id = job["result"]["sound_id"]
    audio_path = f"/v1/sounds/{sound_id}/audio"
    with stack.client(redirect_api) as c:
        moved = c.get(audio_path)
        assert moved.status_code == 307 and moved.headers["cache-control"] == "private, no-store"
        location = moved.headers["location"]
        assert location.startswith(stack.s3.url + f"/{stack.bucket}/{PREFIX}/sounds/{sound_id}/audio.wav?")
        direct = httpx.get(location)  # no API key: the URL itself is the permission
        assert direct.status_code == 200 and direct.content == stack.object(sound_keys(sound_id)[0])
        assert direct.headers["content-type"] == "audio/wav"
        assert direct.headers["content-disposition"].startswith('inline; filename="warm-synth-pad-')

        # followed by an ordinary client: Range reaches the bucket, and the API key does not
        with stack.client(redirect_api) as follow:
            follow.follow_redirects = True
            part = follow.get(audio_path, headers={"Range": "bytes=0-43"})
            assert part.status_code == 206 and part.content == direct.content[:44]
            flac = follow.get(audio_path, params={"format": "flac"})
            assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
            assert flac.url.host == "127.0.0.1" and flac.url.port == stack.s3.port
            assert flac.content == stack.object(f"sounds/{sound_id}/audio.flac")
            assert "authorization" not in {k.lower() for k in flac.request.headers}
            spectrogram = follow.get(f"/v1/sounds/{sound_id}/spectrogram.png")
            assert spectrogram.status_code == 200 and spectrogram.content[:4] == b"\x89PNG"
            assert follow.get(f"/v1/sounds/{sound_id}/peaks", params={"points": 8}).status_code == 200

        assert c.get(audio_path, headers={"If-None-Match": f'"{sound_id}-wav"'}).status_code == 304

    with stack.client(redirect_api, key=make_key("someone else", "creator")) as other:
        refused = other.get(audio_path)
        assert refused.status_code == 404 and "location" not in refused.headers
    with httpx.Client(base_url=redirect_api) as anonymous:
        assert anonymous.get(audio_path).status_code == 401


def test_voice_samples_are_shared_through_the_bucket(stack, redirect_api):
    path = "/v1/voices/en_US-joe-medium/sample"
    with stack.client() as c:
        first = c.get(path)
        assert first.status_code == 200 and first.content[:4] == b"RIFF"
    listed = stack.s3.client().list_objects_v2(Bucket=stack.bucket, Prefix=f"{PREFIX}/voices/en_US-joe-medium/")
    (stored,) = [o["Key"] for o in listed["Contents"]]
    assert stack.object(stored.removeprefix(f"{PREFIX}/")) == first.content
    # another API process takes the sample from the bucket instead of rendering its own
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(2205, dtype=np.float32), 22050, format="WAV", subtype="PCM_16")
    stack.s3.client().put_object(Bucket=stack.bucket, Key=stored, Body=buffer.getvalue())
    with stack.client(redirect_api) as c:
        assert c.get(path).content == buffer.getvalue()


def test_store_outage_is_503_with_retry_after(stack, sounds, database):
    """An API on a store that goes away: 503 + Retry-After for what needs the store, readiness
    names the store, and a voice sample is still rendered."""
    own = S3Server()
    try:
        bucket = own.bucket()
        sound_id = sounds[1]["result"]["sound_id"]
        for key in sound_keys(sound_id):
            own.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{key}", Body=stack.object(key))
        url, proc = start_api(
            {**own.env(bucket, PREFIX, SOUNDBOX_S3_MAX_ATTEMPTS="2"), "SOUNDBOX_STORAGE_DIR": str(stack.dirs["api"])}
        )
        try:
            with stack.client(url) as c:
                assert c.get(f"/v1/sounds/{sound_id}/audio").content == stack.object(sound_keys(sound_id)[0])
                own.stop()
                for path in (
                    f"/v1/sounds/{sound_id}/audio",
                    f"/v1/sounds/{sound_id}/audio?format=mp3",
                    f"/v1/sounds/{sound_id}/spectrogram.png",
                    f"/v1/sounds/{sound_id}/peaks",
                ):
                    down = c.get(path)
                    assert down.status_code == 503, (path, down.text)
                    assert down.headers["content-type"] == "application/problem+json"
                    assert int(down.headers["retry-after"]) > 0
                    assert "object store is unavailable" in down.json()["detail"]
                    assert own.url not in down.text  # where the store is stays inside
                ready = c.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["storage"].startswith("error")
                assert c.get(f"/v1/sounds/{sound_id}").status_code == 200  # metadata needs no store
                sample = c.get("/v1/voices/en_US-joe-medium/sample")
                assert sample.status_code == 200 and sample.content[:4] == b"RIFF"
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        own.stop()


def test_missing_objects_are_404(stack, sounds, redirect_api):
    sound_id = sounds[2]["result"]["sound_id"]
    audio_key, spectrogram_key = sound_keys(sound_id)
    raw = stack.s3.client()
    for key in (audio_key, spectrogram_key):
        raw.delete_object(Bucket=stack.bucket, Key=f"{PREFIX}/{key}")
    for api in (stack.api, redirect_api):
        with stack.client(api) as c:
            for path in (
                f"/v1/sounds/{sound_id}/audio",
                f"/v1/sounds/{sound_id}/audio?format=opus",
                f"/v1/sounds/{sound_id}/peaks",
                f"/v1/sounds/{sound_id}/spectrogram.png",
            ):
                gone = c.get(path)
                assert gone.status_code == 404, (api, path, gone.text)
                assert gone.headers["content-type"] == "application/problem+json"
                assert "missing from the store" in gone.json()["detail"] and "location" not in gone.headers
            assert c.get(f"/v1/sounds/{uuid.uuid4()}/audio").status_code == 404
