"""Live job events (Server-Sent Events across API processes, Last-Event-ID), Prefer: wait, and
Idempotency-Key, on real processes. The magnet queue has no worker here: its jobs stay queued."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid

import httpx
import pytest

from tests.conftest import _TMP, ROOT, Workers, _wait_http, free_port, make_key, wait_for_job


@pytest.fixture(scope="module")
def stack(redis_client, api_url):
    w = Workers(redis_client)
    w.start(queues="music,voice")
    yield w
    w.stop_all()


@pytest.fixture(scope="module")
def second_api(api_url):
    """Another API process on the same Redis and database: events reach every process."""
    port = free_port()
    log = open(_TMP / "api-second.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "soundbox.cli", "api", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/readyz", proc)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def account(api_url):
    """A client of a fresh account (its own pending-jobs budget and job list)."""
    with httpx.Client(base_url=api_url, timeout=90, headers={"Authorization": f"Bearer {make_key('live')}"}) as c:
        yield c
        for job in c.get("/v1/jobs", params={"status": "queued", "limit": 100}).json()["items"]:
            c.post(f"/v1/jobs/{job['id']}/cancel")  # leave nothing waiting on the unserved queue


def read_sse(url: str, headers: dict[str, str], on_event=None, timeout: float = 120) -> list[dict]:
    """Every event of one stream until the server ends it: {"event", "id", "data"} each."""
    events, current = [], {}
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line == "":
                if "data" in current:
                    current["data"] = json.loads(current["data"])
                    events.append(current)
                    if on_event:
                        on_event(current)
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                current[name] = value[1:] if value.startswith(" ") else value
    return events


def auth(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": client.headers["authorization"]}


def order(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def test_sse_delivers_every_status_change_in_order_from_another_api_process(account, stack, second_api):
    job = account.post("/v1/generations", json={"model": "music", "prompt": "slow evolving pad", "duration": 2}).json()
    events = read_sse(f"{second_api}/v1/jobs/{job['id']}/events", auth(account))  # ends by itself
    types = [e["event"] for e in events]
    assert types[:2] == ["job.queued", "job.started"] and types[-1] == "job.succeeded", types
    assert set(types[2:-1]) <= {"job.progress", "job.attempt"} and "job.attempt" in types and "job.progress" in types
    ids = [order(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e["data"]["type"] == e["event"] and e["data"]["data"]["id"] == job["id"] for e in events)
    statuses = [e["data"]["data"]["status"] for e in events]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded" and set(statuses[1:-1]) == {"running"}
    progress = [e["data"]["data"]["progress"] for e in events if e["event"] == "job.progress"]
    assert progress == sorted(progress) and all(0 < p <= 1 for p in progress)
    attempts = [e["data"]["attempt"] for e in events if e["event"] == "job.attempt"]
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert all({"seed", "score", "is_good"} <= set(a) for a in attempts)
    final = events[-1]["data"]["data"]
    now = account.get(f"/v1/jobs/{job['id']}").json()
    assert final["result"]["sound_id"] == now["result"]["sound_id"] and final["attempts"] == now["attempts"]
    assert final["result"]["audio_url"] == f"{second_api}/v1/sounds/{now['result']['sound_id']}/audio"


def test_sse_resumes_after_last_event_id_and_ends(account, api_url, stack):
    job = account.post("/v1/generations", json={"model": "voice", "prompt": "Resume me, please."}).json()
    wait_for_job(account, job["id"])
    url = f"{api_url}/v1/jobs/{job['id']}/events"
    full = read_sse(url, auth(account))  # a finished job: its history, then the end
    assert full[0]["event"] == "job.queued" and full[-1]["event"] == "job.succeeded"
    cut = [e["event"] for e in full].index("job.started")
    rest = read_sse(url, {**auth(account), "Last-Event-ID": full[cut]["id"]})
    assert [e["id"] for e in rest] == [e["id"] for e in full[cut + 1 :]]
    done = account.get(url, headers={"Last-Event-ID": full[-1]["id"]})
    assert done.status_code == 204  # seen it all: EventSource stops reconnecting
    bad = account.get(url, headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Last-Event-ID"


def test_sse_is_live_across_processes_and_tells_a_cancel(account, stack, second_api):
    job = account.post(
        "/v1/generations", json={"model": "magnet", "prompt": "never served here", "duration": 10}
    ).json()
    listening = threading.Event()
    got: list[dict] = []

    def follow():
        got.extend(
            read_sse(f"{second_api}/v1/jobs/{job['id']}/events", auth(account), on_event=lambda e: listening.set())
        )

    reader = threading.Thread(target=follow)
    reader.start()
    assert listening.wait(30), "no job.queued event"
    assert account.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200  # through the first API process
    reader.join(30)
    assert not reader.is_alive(), "the stream did not end after the terminal event"
    assert [e["event"] for e in got] == ["job.queued", "job.canceled"]
    assert got[-1]["data"]["data"]["status"] == "canceled" and got[-1]["data"]["data"]["error"] == "canceled by request"


def test_sse_of_another_accounts_job_is_404(client, account):
    job = account.post("/v1/generations", json={"model": "magnet", "prompt": "private business", "duration": 10}).json()
    resp = client.get(f"/v1/jobs/{job['id']}/events")
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/problem+json")


def test_prefer_wait_returns_the_finished_job(account, stack):
    resp = account.post(
        "/v1/generations", json={"model": "voice", "prompt": "Worth the wait."}, headers={"Prefer": "wait=60"}
    )
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["status"] == "succeeded" and job["result"]["audio_url"].startswith("http")
    assert resp.headers["preference-applied"] == "wait=60"
    assert resp.headers["location"].endswith(f"/v1/jobs/{job['id']}")


def test_prefer_wait_times_out_with_202(account):
    resp = account.post(
        "/v1/generations",
        json={"model": "magnet", "prompt": "nobody serves magnet", "duration": 10},
        headers={"Prefer": "respond-async, wait=1"},
    )
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    assert resp.headers["preference-applied"] == "wait=1"
    plain = account.post(
        "/v1/generations",
        json={"model": "magnet", "prompt": "no preference", "duration": 10},
        headers={"Prefer": "respond-async"},
    )
    assert plain.status_code == 202 and "preference-applied" not in plain.headers


@pytest.mark.parametrize("prefer", ["wait=61", "wait=abc", "wait=-1", "wait=", "wait=1.5"])
def test_bad_prefer_wait_is_422(account, prefer):
    resp = account.post(
        "/v1/generations",
        json={"model": "magnet", "prompt": "bad preference", "duration": 10},
        headers={"Prefer": prefer},
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "Prefer", resp.text
    assert account.get("/v1/jobs").json()["items"] == []


MAGNET = {"model": "magnet", "prompt": "idempotent synth line", "duration": 10}


def test_idempotent_replay_makes_one_job(account):
    key = str(uuid.uuid4())
    first = account.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key})
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    # the same request (other key order and spacing) is the same request
    again = account.post(
        "/v1/generations",
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        content=json.dumps(dict(reversed(list(MAGNET.items()))), indent=2),
    )
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.headers["location"] == first.headers["location"]
    assert [j["id"] for j in account.get("/v1/jobs").json()["items"]] == [first.json()["id"]]
    other = account.post(
        "/v1/generations", json={**MAGNET, "prompt": "a different request"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409 and other.headers["content-type"].startswith("application/problem+json")
    assert key in other.json()["detail"]
    assert len(account.get("/v1/jobs").json()["items"]) == 1


def test_idempotency_keys_are_per_account(account, api_url):
    key = "shared-looking-key"
    mine = account.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key}).json()
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {make_key('b')}"}) as other:
        theirs = other.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key})
        assert theirs.status_code == 202 and "idempotent-replayed" not in theirs.headers
        assert theirs.json()["id"] != mine["id"]
        other.post(f"/v1/jobs/{theirs.json()['id']}/cancel")


def test_concurrent_requests_with_one_key_make_one_job(account):
    key = str(uuid.uuid4())
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def post():
        with httpx.Client(base_url=str(account.base_url), headers=auth(account), timeout=60) as c:
            r = c.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [202] * 6
    assert len({r.json()["id"] for r in results}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in results) == 5
    assert len(account.get("/v1/jobs").json()["items"]) == 1


def test_an_expired_key_is_free_again(account):
    from sqlalchemy import text

    from shared.infra.db import session_scope

    key = str(uuid.uuid4())
    first = account.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    with session_scope() as s:  # the key's 24 hours have passed
        s.exec(
            text("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = :k").bindparams(
                k=key
            )
        )  # type: ignore[call-overload]
    other = account.post(
        "/v1/generations", json={**MAGNET, "prompt": "a new request"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 202 and "idempotent-replayed" not in other.headers
    assert other.json()["id"] != first.json()["id"]
    again = account.post(
        "/v1/generations", json={**MAGNET, "prompt": "a new request"}, headers={"Idempotency-Key": key}
    )
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == other.json()["id"]


def test_rejected_requests_do_not_use_up_the_key(account):
    key = str(uuid.uuid4())
    bad = account.post("/v1/generations", json={**MAGNET, "duration": 99}, headers={"Idempotency-Key": key})
    assert bad.status_code == 422
    good = account.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key})
    assert good.status_code == 202 and "idempotent-replayed" not in good.headers


@pytest.mark.parametrize("key", [b"x" * 256, b"with space", "ünïcode".encode()])
def test_malformed_idempotency_key_is_422(account, key):
    resp = account.post("/v1/generations", json=MAGNET, headers={"Idempotency-Key": key})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "Idempotency-Key", resp.text
    assert account.get("/v1/jobs").json()["items"] == []


def test_a_client_that_leaves_frees_its_subscription(account, api_url, redis_client):
    import time

    from shared.domain.events import channel

    job = account.post("/v1/generations", json={"model": "magnet", "prompt": "left alone", "duration": 10}).json()
    subscribers = lambda: dict(redis_client.pubsub_numsub(channel(job["id"])))[channel(job["id"]).encode()]  # noqa: E731
    with httpx.stream("GET", f"{api_url}/v1/jobs/{job['id']}/events", headers=auth(account), timeout=30) as resp:
        lines = resp.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: job.queued"
        assert subscribers() == 1
    deadline = time.monotonic() + 30
    while subscribers():
        assert time.monotonic() < deadline, "the stream kept its subscription after the client left"
        time.sleep(0.2)
