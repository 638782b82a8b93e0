"""soundbox/client.py and the client commands (`soundbox generate`, `speak`, `voices`, `sounds`,
`jobs`) run as subprocesses against the real API and a real worker (tiny catalog)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from soundbox.client import Client, SoundboxError
from tests.conftest import ROOT, free_port, make_key, start_api


def soundbox(*args: str, env: dict[str, str] | None = None, timeout: float = 480) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SOUNDBOX_URL", "SOUNDBOX_API_KEY")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "soundbox.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**full_env, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(
            f"soundbox {' '.join(args[:2])} ran past {timeout} s; stderr ends: {err[-1500:]}"
        ) from None


def conn(api_url: str, key: str) -> list[str]:
    return ["--url", api_url, "--key", key]


def no_traceback(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr


# --- before any worker runs: queued jobs stay queued ---------------------------------------------


def test_ctrl_c_cancels_the_job(api_url, api_key, idle_queues):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "soundbox.cli",
            "generate",
            "waiting for ever",
            "--model",
            "magnet",
            "--duration",
            "10",
            *conn(api_url, api_key),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        # as from a terminal: a test run started in the background (CI, `cmd &`) ignores SIGINT,
        # and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = proc.stderr.readline()
    assert line.startswith("job ") and "queued" in line, line
    job_id = line.split()[1]
    time.sleep(1.0)  # following the events now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"canceled job {job_id}" in err and "Traceback" not in err
    job = httpx.get(f"{api_url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert job["status"] == "canceled"


def test_a_full_queue_is_a_clear_503_with_retry_after(idle_queues):
    url, proc = start_api({"SOUNDBOX_MAX_QUEUED_JOBS": "1"})
    try:
        key = make_key("queue cap", "creator")
        first = soundbox("jobs", "list", *conn(url, key))
        assert first.returncode == 0, first.stderr
        Client(url, key).submit("fills the only place", model="magnet", duration=10)
        out = soundbox("generate", "one too many", "--model", "magnet", "--duration", "10", *conn(url, key))
        assert out.returncode == 1
        assert "service unavailable" in out.stderr and "retry after 30 s" in out.stderr, out.stderr
        no_traceback(out)
    finally:
        proc.terminate()
        proc.wait(10)


def test_rate_limited_is_a_clear_429_with_retry_after():
    url, proc = start_api(
        {
            "SOUNDBOX_RATE_LIMITS": json.dumps(
                {"generate": [1000, 60], "read": [1, 3600], "speech": [1000, 60], "admin": [1000, 60]}
            )
        }
    )
    try:
        key = make_key("rate limited", "free")
        assert soundbox("jobs", "list", *conn(url, key)).returncode == 0
        out = soundbox("jobs", "list", *conn(url, key))
        assert out.returncode == 1
        assert "too many requests" in out.stderr and "retry after" in out.stderr, out.stderr
        no_traceback(out)
    finally:
        proc.terminate()
        proc.wait(10)


def test_clear_messages_for_401_404_422_and_a_server_that_is_down(api_url, api_key):
    bad = soundbox("jobs", "list", *conn(api_url, "sk_not_a_real_key"))
    assert bad.returncode == 1 and "not authorized" in bad.stderr and "SOUNDBOX_API_KEY" in bad.stderr
    none = soundbox("voices", "--url", api_url)  # no key at all, anonymous access is off
    assert none.returncode == 1 and "API key is required" in none.stderr
    missing = soundbox("sounds", "get", str(uuid.uuid4()), *conn(api_url, api_key))
    assert missing.returncode == 1 and missing.stderr.startswith("soundbox: not found: no sound")
    invalid = soundbox("generate", "far too long", "--model", "magnet", "--duration", "99", *conn(api_url, api_key))
    assert invalid.returncode == 1 and "invalid request: duration:" in invalid.stderr, invalid.stderr
    down = soundbox("generate", "nobody listens", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "cannot reach Sound Box" in down.stderr and "is it running" in down.stderr
    for out in (bad, none, missing, invalid, down):
        no_traceback(out)


# --- with a worker ---------------------------------------------------------------------------------


def test_generate_shows_progress_and_writes_the_file(api_url, api_key, module_worker, tmp_path):
    target = tmp_path / "piano.wav"
    out = soundbox(
        "generate",
        "calm piano, slow",
        "--model",
        "music",
        "--duration",
        "3",
        "-o",
        str(target),
        *conn(api_url, api_key),
    )
    assert out.returncode == 0, out.stderr
    bars = [line for line in out.stderr.splitlines() if line.startswith("[")]
    percents = [float(line.split("]")[1].split("%")[0]) for line in bars]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert any(0 < p < 100 for p in percents), out.stderr
    assert "running" in out.stderr and "succeeded" in bars[-1]
    assert target.read_bytes()[:4] == b"RIFF" and f"wrote {target}" in out.stderr
    assert out.stdout.startswith("sound ") and "3.0 s at 32000 Hz" in out.stdout and "kept" in out.stdout
    sound_id = out.stdout.split()[1].rstrip(":")
    # the same sound through `sounds get` and `sounds download`, with the settings from the environment
    env = {"SOUNDBOX_URL": api_url, "SOUNDBOX_API_KEY": api_key}
    got = soundbox("sounds", "get", sound_id, "--json", env=env)
    assert got.returncode == 0 and json.loads(got.stdout)["id"] == sound_id
    flac = tmp_path / "again.flac"
    dl = soundbox("sounds", "download", sound_id, "-o", str(flac), env=env)
    assert dl.returncode == 0 and flac.read_bytes()[:4] == b"fLaC"


def test_generate_to_mp3_quietly_with_json(api_url, api_key, module_worker, tmp_path):
    target = tmp_path / "rain.mp3"
    out = soundbox(
        "generate",
        "rain on leaves",
        "--model",
        "audio",
        "--duration",
        "2",
        "-q",
        "--json",
        "-o",
        str(target),
        *conn(api_url, api_key),
    )
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["status"] == "succeeded" and job["model"] == "audio"
    assert not [line for line in out.stderr.splitlines() if line.startswith("[")]
    data = target.read_bytes()
    assert data[:3] == b"ID3" or data[0] == 0xFF


def test_speak_and_voices(api_url, api_key, tmp_path):
    voices = soundbox("voices", *conn(api_url, api_key))
    assert voices.returncode == 0 and "* en_US-joe-medium" in voices.stdout
    target = tmp_path / "hello.mp3"
    out = soundbox(
        "speak",
        "Hello from the command line.",
        "--voice",
        "en_US-joe-medium",
        "-o",
        str(target),
        *conn(api_url, api_key),
    )
    assert out.returncode == 0, out.stderr
    data = target.read_bytes()
    assert len(data) > 2000 and (data[:3] == b"ID3" or data[0] == 0xFF)
    wav = tmp_path / "hello.wav"
    assert soundbox("speak", "Hello.", "-o", str(wav), *conn(api_url, api_key)).returncode == 0
    assert wav.read_bytes()[:4] == b"RIFF"
    unknown = soundbox("speak", "Hello.", "--voice", "xx_nobody", "-o", str(wav), *conn(api_url, api_key))
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    no_traceback(unknown)


def test_jobs_list_get_cancel(api_url, api_key, module_worker):
    listed = soundbox("jobs", "list", "--limit", "5", *conn(api_url, api_key))
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) >= 1
    job_id = listed.stdout.split()[0]
    got = soundbox("jobs", "get", job_id, *conn(api_url, api_key))
    assert json.loads(got.stdout)["id"] == job_id
    finished = next(line.split()[0] for line in listed.stdout.splitlines() if " succeeded " in line)
    again = soundbox("jobs", "cancel", finished, *conn(api_url, api_key))
    assert again.returncode == 1 and "HTTP 409" in again.stderr
    no_traceback(again)


def test_client_generate_follows_events_and_downloads(api_url, api_key, module_worker):
    events = []
    with Client(api_url, api_key) as sb:
        job = sb.generate("slow evolving pad", model="music", duration=4, seed=3, on_event=events.append)
        assert job["status"] == "succeeded"
        types = [e.type for e in events]
        assert types[0] in ("job.queued", "job.started") and types[-1] == "job.succeeded"
        assert "job.progress" in types and "job.attempt" in types
        progress = [e.job["progress"] for e in events]
        assert progress == sorted(progress)
        buf = io.BytesIO()
        size = sb.download(job["result"]["sound_id"], buf, "ogg")
        assert size == len(buf.getvalue()) > 1000 and buf.getvalue()[:4] == b"OggS"
        peaks = sb.peaks(job["result"]["sound_id"], points=10)
        assert len(peaks["peaks"]) == 10
        # with Prefer: wait the finished job comes back in the answer
        waited = sb.submit("a quick one", model="music", duration=1, wait=60)
        assert waited["status"] == "succeeded" and waited["result"]
        with pytest.raises(SoundboxError) as err:
            sb.cancel(waited["id"])
        assert err.value.status == 409


def test_sounds_search_and_update(api_url, module_worker, tmp_path):
    key = make_key("cli library", "creator")
    sb = Client(api_url, key)
    sb.sounds()  # the library routes answer (a SoundboxError here fails the test)
    rain = sb.generate("steady rain on a window", model="audio", duration=2)
    sb.generate("dog barking far away", model="audio", duration=2)
    rain_id = rain["result"]["sound_id"]
    out = soundbox("sounds", "search", "rain", *conn(api_url, key))
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == [rain_id]
    upd = soundbox(
        "sounds",
        "update",
        rain_id,
        "--title",
        "Window rain",
        "--tags",
        "rain,calm",
        "--visibility",
        "public",
        *conn(api_url, key),
    )
    assert upd.returncode == 0 and "Window rain" in upd.stdout and "public" in upd.stdout
    public = soundbox("sounds", "search", "window", "--public", "--json", *conn(api_url, key))
    assert rain_id in [s["id"] for s in json.loads(public.stdout)["items"]]
    listed = soundbox("sounds", "list", *conn(api_url, key))
    assert len(listed.stdout.splitlines()) == 2
    gone = soundbox("sounds", "delete", rain_id, *conn(api_url, key))
    assert gone.returncode == 0
    after = soundbox("sounds", "get", rain_id, *conn(api_url, key))
    assert after.returncode == 1 and after.stderr.startswith("soundbox: gone:"), after.stderr
    sb.close()
