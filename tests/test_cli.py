"""The `soundbox` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from shared.audio.io import encode_wav
from tests.conftest import ROOT


def soundbox(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soundbox.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_analyze_prints_one_json_line_per_file(tmp_path):
    sr = 32000
    t = np.arange(sr * 2) / sr
    clean = tmp_path / "chord.wav"
    clean.write_bytes(encode_wav(0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t)), sr))
    clipped = tmp_path / "clipped.wav"
    clipped.write_bytes(encode_wav(np.clip(3 * np.sin(2 * np.pi * 220 * t), -1, 1), sr))
    out = soundbox("analyze", str(clean), str(clipped), "--kind", "music", "--json", check=False)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["file"] for r in lines] == [str(clean), str(clipped)]
    assert lines[0]["issues"] == [] and lines[0]["is_good"] and lines[0]["score"] == 100
    assert "clipping" in {i["code"] for i in lines[1]["issues"]} and lines[1]["score"] < 100


def test_analyze_a_folder_in_one_process_with_the_kind(tmp_path):
    from tests.shared import audio_corpus as corpus

    rng = np.random.default_rng(0)
    sr = 22050
    rain = corpus.sfx_rain(rng, 3 * sr, sr)
    rain = rain / np.abs(rain).max() * 0.5
    files = {
        "rain.wav": rain,
        "rain-stops.wav": np.r_[rain[:sr], np.zeros(2 * sr)],
        "silent.wav": np.zeros(sr),
        "rain-dc.wav": rain * 0.2 + 0.3,
    }
    for name, audio in files.items():
        (tmp_path / name).write_bytes(encode_wav(audio, sr))
    paths = sorted(str(p) for p in tmp_path.glob("*.wav"))
    out = soundbox("analyze", *paths, "--kind", "sfx", "--json", check=False)
    assert out.returncode == 0, out.stderr
    lines = {json.loads(line)["file"]: json.loads(line) for line in out.stdout.splitlines()}
    assert sorted(lines) == paths and all(r["kind"] == "sfx" for r in lines.values())
    verdicts = {p.rsplit("/", 1)[1]: (r["is_good"], [i["code"] for i in r["issues"]]) for p, r in lines.items()}
    assert verdicts["rain.wav"] == (True, [])  # rain is noise by nature
    assert verdicts["rain-stops.wav"] == (False, ["early_stop"])
    assert verdicts["silent.wav"] == (False, ["silence"])
    assert verdicts["rain-dc.wav"][0] is False and "dc_offset" in verdicts["rain-dc.wav"][1]
    as_music = soundbox("analyze", str(tmp_path / "rain.wav"), "--kind", "music", check=False)
    assert "BAD" in as_music.stdout and "noise_like" in as_music.stdout  # where music was asked


def test_analyze_reports_unreadable_files_and_exits_nonzero(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    out = soundbox("analyze", str(junk), "--json", check=False)
    assert out.returncode == 1
    assert json.loads(out.stdout)["file"] == str(junk) and "error" in json.loads(out.stdout)


def test_analyze_rejects_unknown_kind():
    out = soundbox("analyze", "x.wav", "--kind", "poetry", check=False)
    assert out.returncode == 2 and "--kind" in out.stderr


def test_analyze_takes_the_prompt_and_says_what_it_waived(tmp_path):
    sr = 16000
    t = np.arange(3 * sr) / sr
    drone = tmp_path / "drone.wav"
    drone.write_bytes(encode_wav(0.5 * np.sin(2 * np.pi * 110 * t), sr))
    plain = json.loads(soundbox("analyze", str(drone), "--kind", "sfx", "--json").stdout)
    assert plain["is_good"] is False and [i["code"] for i in plain["issues"]] == ["stuck_tone"]
    assert plain["issues"][0]["fails"] is True and 0.5 <= plain["issues"][0]["confidence"] <= 1
    asked = json.loads(
        soundbox("analyze", str(drone), "--kind", "sfx", "--prompt", "a low spaceship drone", "--json").stdout
    )
    assert asked["is_good"] is True and asked["issues"] == [] and asked["score"] == 100
    assert [(w["code"], w["words"]) for w in asked["waived"]] == [("stuck_tone", ["drone"])]
    text = soundbox("analyze", str(drone), "--kind", "sfx", "--prompt", "a low spaceship drone").stdout
    assert "good" in text and "waived by" in text and "drone" in text


def test_migrate_is_idempotent(database):
    for _ in range(2):
        out = soundbox("migrate")
        assert "latest migration" in out.stdout


def test_worker_rejects_unknown_queue():
    out = soundbox("worker", "--queues", "music,bagpipes", check=False)
    assert out.returncode != 0 and "bagpipes" in out.stderr


def test_keys_create_list_revoke(api_url, database):
    import httpx

    created = soundbox("keys", "create", "--name", "cli user", "--tier", "premium")
    secret = created.stdout.strip()
    assert secret.startswith("sbx_") and "not shown again" in created.stderr
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(api_url + "/v1/models", headers=headers).status_code == 200

    listing = soundbox("keys", "list").stdout
    assert secret[:12] in listing and "premium" in listing and secret not in listing

    from sqlalchemy import text

    from shared.infra.db import session_scope

    with session_scope() as s:  # only a hash is stored
        rows = s.exec(text("SELECT api_keys::text FROM api_keys")).all()
    assert rows and not any(secret in r[0] for r in rows)

    assert "revoked" in soundbox("keys", "revoke", secret[:12]).stdout
    # The API caches key lookups for SOUNDBOX_API_KEY_CACHE_SECONDS (5 s): a revocation made by
    # another process is refused within that time.
    deadline = time.monotonic() + 15
    while (status := httpx.get(api_url + "/v1/models", headers=headers).status_code) == 200:
        assert time.monotonic() < deadline, "the revoked key is still accepted"
        time.sleep(0.5)
    assert status == 401
    assert soundbox("keys", "revoke", "sbx_nothing", check=False).returncode != 0
