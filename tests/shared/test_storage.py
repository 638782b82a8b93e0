"""The local object store: round trips, ranges, and keys that cannot escape the root."""

from __future__ import annotations

import pytest

from shared.infra.storage import InvalidKey, LocalObjectStore, ObjectNotFound, sound_keys


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "root")


def test_round_trip_size_exists_delete(store):
    data = bytes(range(256)) * 1000
    store.put("sounds/abc/audio.wav", data)
    assert store.exists("sounds/abc/audio.wav")
    assert store.get("sounds/abc/audio.wav") == data
    assert store.size("sounds/abc/audio.wav") == len(data)
    assert b"".join(store.stream("sounds/abc/audio.wav")) == data
    assert b"".join(store.stream("sounds/abc/audio.wav", 10, 99_999)) == data[10:100_000]
    assert b"".join(store.stream("sounds/abc/audio.wav", 255_990)) == data[255_990:]
    store.delete("sounds/abc/audio.wav")
    assert not store.exists("sounds/abc/audio.wav")
    store.delete("sounds/abc/audio.wav")  # deleting twice is fine


def test_overwrite_is_atomic_and_leaves_no_temp_files(store):
    store.put("a/b", b"one")
    store.put("a/b", b"two")
    assert store.get("a/b") == b"two"
    assert sorted(p.name for p in (store.root / "a").iterdir()) == ["b"]


def test_missing_objects(store):
    with pytest.raises(ObjectNotFound):
        store.get("nope")
    with pytest.raises(ObjectNotFound):
        store.size("nope")
    with pytest.raises(ObjectNotFound):
        store.stream("nope")


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "",
        ".hidden",
        "a/./b",
        "a\\b",
        "a/b/",
        "x" * 600,
        "sounds/\x00/a",
    ],
)
def test_keys_cannot_escape_the_root(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.exists(key)


def test_symlink_out_of_root_is_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    store.root.mkdir(parents=True)
    (store.root / "link").symlink_to(outside)
    with pytest.raises(InvalidKey):
        store.put("link/file", b"x")
    assert not (outside / "file").exists()


def test_sound_keys_are_valid_keys(store):
    audio, spectrogram = sound_keys("5f0c7f7e-1111-4a4a-9b9b-123456789abc")
    store.put(audio, b"a")
    store.put(spectrogram, b"s")
    assert store.exists(audio) and store.exists(spectrogram)


def test_delete_prefix_removes_a_folder_and_only_it(store):
    for key in ("sounds/a/audio.wav", "sounds/a/audio.mp3", "sounds/a/peaks-50.json", "sounds/ab/audio.wav"):
        store.put(key, b"x")
    assert store.delete_prefix("sounds/a") == 3
    assert not store.exists("sounds/a/audio.wav") and not (store.root / "sounds" / "a").exists()
    assert store.exists("sounds/ab/audio.wav")  # a folder, not a string prefix
    assert store.delete_prefix("sounds/a") == 0  # again: nothing to do
    assert store.delete_prefix("sounds/missing/") == 0
    with pytest.raises(InvalidKey):
        store.delete_prefix("../outside")
