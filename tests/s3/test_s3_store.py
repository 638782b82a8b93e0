"""The object store's two backends against the same contract -- the local folder and S3 (a real
moto server over HTTP on loopback) -- plus what only S3 does: multipart uploads, presigned URLs,
an unreachable endpoint, and the store chosen by SOUNDBOX_STORAGE_URL."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

from shared.audio import formats, peaks
from shared.infra.s3store import S3ObjectStore, parse_s3_url
from shared.infra.storage import InvalidKey, LocalObjectStore, ObjectNotFound, StoreUnavailable, get_store
from shared.settings import Settings
from tests.conftest import free_port


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "root")
    return request.getfixturevalue("s3_store")


def wav_bytes(seconds: float = 1.0, rate: int = 32000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# --- the contract both backends keep ---------------------------------------------------------------


def test_put_get_range_delete(store):
    data = bytes(range(256)) * 1000
    store.put("sounds/abc/audio.wav", data, "audio/wav")
    assert store.exists("sounds/abc/audio.wav")
    assert store.get("sounds/abc/audio.wav") == data
    assert store.size("sounds/abc/audio.wav") == len(data)
    assert b"".join(store.stream("sounds/abc/audio.wav")) == data
    assert b"".join(store.stream("sounds/abc/audio.wav", 10, 99_999)) == data[10:100_000]
    assert b"".join(store.stream("sounds/abc/audio.wav", 255_990)) == data[255_990:]
    assert b"".join(store.stream("sounds/abc/audio.wav", 0, 0)) == data[:1]
    store.put("sounds/abc/audio.wav", b"replaced")
    assert store.get("sounds/abc/audio.wav") == b"replaced"
    store.delete("sounds/abc/audio.wav")
    assert not store.exists("sounds/abc/audio.wav")
    store.delete("sounds/abc/audio.wav")  # deleting twice is fine


def test_missing_objects(store):
    with pytest.raises(ObjectNotFound):
        store.get("sounds/nope/audio.wav")
    with pytest.raises(ObjectNotFound):
        store.size("sounds/nope/audio.wav")
    with pytest.raises(ObjectNotFound):
        store.stream("sounds/nope/audio.wav")  # at once, before any byte is asked for
    assert not store.exists("sounds/nope/audio.wav")


def test_list_and_delete_prefix(store):
    for key in (
        "sounds/a/audio.wav",
        "sounds/a/audio.mp3",
        "sounds/a/peaks-10.json",
        "sounds/ab/audio.wav",
        "voices/x/sample.wav",
    ):
        store.put(key, key.encode())
    assert list(store.list("sounds/")) == [
        "sounds/a/audio.mp3",
        "sounds/a/audio.wav",
        "sounds/a/peaks-10.json",
        "sounds/ab/audio.wav",
    ]
    assert store.delete_prefix("sounds/a/") == 3
    assert list(store.list()) == ["sounds/ab/audio.wav", "voices/x/sample.wav"]  # sounds/ab is not under sounds/a/
    assert store.delete_prefix("sounds/a/") == 0
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    with pytest.raises(InvalidKey):
        store.delete_prefix("../")


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a//b", "", ".hidden", "a/b/"])
def test_bad_keys_are_refused(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.get(key)


def test_conversions_and_peaks_are_cached_in_the_store(store):
    audio_key = "sounds/5f0c7f7e/audio.wav"
    store.put(audio_key, wav_bytes(), "audio/wav")
    mp3_key = formats.ensure_format(store, audio_key, "mp3")
    assert mp3_key == "sounds/5f0c7f7e/audio.mp3" and store.exists(mp3_key)
    decoded, rate = sf.read(io.BytesIO(store.get(mp3_key)))
    assert rate == 32000 and abs(len(decoded) - 32000) < 3000
    body = peaks.ensure_peaks(store, audio_key, 50)
    assert json.loads(store.get(peaks.peaks_key(audio_key, 50))) == json.loads(body)
    store.delete(audio_key)  # from now on only the cached objects can answer
    assert formats.ensure_format(store, audio_key, "mp3") == mp3_key
    assert peaks.ensure_peaks(store, audio_key, 50) == body
    with pytest.raises(ObjectNotFound):
        formats.ensure_format(store, audio_key, "flac")


def test_check(store):
    store.check()


# --- S3 only ---------------------------------------------------------------------------------------


def test_objects_live_under_the_prefix_with_their_content_type(s3_store, s3_server):
    s3_store.put("sounds/abc/spectrogram.png", b"\x89PNG...", "image/png")
    raw = s3_server.client()
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert keys == ["deploy/one/sounds/abc/spectrogram.png"]
    head = raw.head_object(Bucket=s3_store.bucket, Key=keys[0])
    assert head["ContentType"] == "image/png" and head["ContentLength"] == 7


def test_large_objects_go_up_in_parts(s3_store, s3_server):
    data = np.random.default_rng(1).integers(0, 256, 11 * 1024 * 1024 + 17, dtype=np.uint8).tobytes()
    s3_store.put("sounds/big/audio.wav", data, "audio/wav")
    head = s3_server.client().head_object(Bucket=s3_store.bucket, Key="deploy/one/sounds/big/audio.wav")
    assert head["ETag"].strip('"').endswith("-3")  # three parts of 5 MiB, 5 MiB and the rest
    assert head["ContentType"] == "audio/wav"
    assert s3_store.get("sounds/big/audio.wav") == data
    assert (
        b"".join(s3_store.stream("sounds/big/audio.wav", 5 * 1024 * 1024 - 3, 5 * 1024 * 1024 + 2))
        == data[5 * 1024 * 1024 - 3 : 5 * 1024 * 1024 + 3]
    )


def test_presigned_url_serves_the_bytes(s3_store):
    data = wav_bytes(0.5)
    s3_store.put("sounds/p/audio.wav", data, "audio/wav")
    url = s3_store.presign(
        "sounds/p/audio.wav",
        60,
        content_type="audio/wav",
        content_disposition='attachment; filename="tone-1234abcd.wav"',
    )
    assert url.startswith(s3_store.endpoint_url) and "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "audio/wav"
    assert got.headers["content-disposition"] == 'attachment; filename="tone-1234abcd.wav"'
    part = httpx.get(url, headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == data[4:12]


def test_presign_endpoint_for_clients(s3_server):
    store = S3ObjectStore(
        s3_server.bucket(), endpoint_url=s3_server.url, presign_endpoint_url=f"http://localhost:{s3_server.port}"
    )
    store.put("a/b", b"bytes")
    url = store.presign("a/b", 30)
    assert url.startswith(f"http://localhost:{s3_server.port}/")
    assert httpx.get(url).content == b"bytes"


def test_unreachable_endpoint_is_unavailable_not_missing():
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3ObjectStore("soundbox", endpoint_url=closed, max_attempts=2, connect_timeout=1)
    for call in (
        lambda: store.get("a/b"),
        lambda: store.size("a/b"),
        lambda: store.exists("a/b"),
        lambda: store.put("a/b", b"x"),
        lambda: store.stream("a/b"),
        store.check,
    ):
        with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
            call()


def test_missing_bucket_is_unavailable(s3_server):
    store = S3ObjectStore("no-such-bucket-here", endpoint_url=s3_server.url, max_attempts=1)
    with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
        store.put("a/b", b"x")
    with pytest.raises(StoreUnavailable):
        store.check()


# --- choosing the backend ---------------------------------------------------------------------------


def test_the_storage_url_chooses_the_backend(tmp_path, s3_server):
    assert isinstance(get_store(Settings(storage_dir=tmp_path)), LocalObjectStore)
    local = get_store(Settings(storage_url=f"file://{tmp_path}/elsewhere"))
    assert isinstance(local, LocalObjectStore) and local.root == (tmp_path / "elsewhere").resolve()
    s3 = get_store(Settings(storage_url="s3://media/sound-box/", s3_endpoint_url=s3_server.url))
    assert isinstance(s3, S3ObjectStore) and (s3.bucket, s3.prefix) == ("media", "sound-box/")
    assert s3.addressing_style == "path"  # a self-hosted endpoint
    assert get_store(Settings(storage_url="s3://media/sound-box/", s3_endpoint_url=s3_server.url)) is s3  # one client
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="s3://bucket"):
        Settings(storage_url="ftp://media/x")
    with pytest.raises(ValueError):
        parse_s3_url("s3://bucket/../up")
