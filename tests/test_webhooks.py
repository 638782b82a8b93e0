"""Signed webhooks end to end: real API, generation worker, webhook worker and receiver processes.
Signatures are checked with the Standard Webhooks reference implementation."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import Workers, make_key, wait_for_job

ALL_EVENTS = ["job.started", "job.progress", "job.succeeded", "job.failed", "job.canceled"]
RETRY_SCHEDULE = "0.5,0.5,0.5"  # four tries in all, quickly
WEBHOOK_TIMEOUT = "2"


@pytest.fixture(scope="module")
def stack(redis_client, api_url):
    w = Workers(redis_client)
    w.start(queues="music,audio,voice")
    w.start_webhooks(
        env={"SOUNDBOX_WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE, "SOUNDBOX_WEBHOOK_TIMEOUT": WEBHOOK_TIMEOUT}
    )
    yield w
    w.stop_all()


def speak(client, url: str | None, text: str = "Webhooks are on their way.", **fields) -> dict:
    body = {"model": "voice", "prompt": text, **({"webhook_url": url} if url else {}), **fields}
    resp = client.post("/v1/generations", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()


def deliveries(client, job_id: str, until=lambda items: True, timeout: float = 60) -> list[dict]:
    """The job's deliveries once none is pending any more (and ``until`` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/v1/jobs/{job_id}/webhooks")
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        if items and all(d["state"] != "pending" for d in items) and until(items):
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.2)


def verified(secret: str, request: dict) -> dict:
    return Webhook(secret).verify(request["body"], request["headers"])


def test_every_subscribed_event_arrives_signed(client, stack, receiver):
    rx = receiver()
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    assert secret.startswith("whsec_")
    job = speak(client, rx.url("/all"), webhook_events=ALL_EVENTS)
    assert job["webhook_url"] == rx.url("/all") and job["webhook_events"] == ALL_EVENTS
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    items = deliveries(client, job["id"], until=lambda items: any(d["event_type"] == "job.succeeded" for d in items))
    got = rx.requests("/all")
    assert len(got) == len(items)
    payloads = [verified(secret, r) for r in got]
    types = [p["type"] for p in payloads]
    assert set(types) <= set(ALL_EVENTS) and types.count("job.started") == 1 and types.count("job.succeeded") == 1
    assert types.index("job.started") < types.index("job.succeeded")
    assert all(p["data"]["id"] == job["id"] and datetime.fromisoformat(p["timestamp"]) for p in payloads)
    final = payloads[types.index("job.succeeded")]["data"]
    assert final["status"] == "succeeded" and final["result"]["sound_id"] == done["result"]["sound_id"]
    assert final["result"]["audio_url"].endswith(f"/v1/sounds/{done['result']['sound_id']}/audio")
    assert payloads[types.index("job.started")]["data"]["status"] == "running"
    assert len({r["headers"]["webhook-id"] for r in got}) == len(got)  # one message id per event
    assert {d["webhook_id"] for d in items} == {r["headers"]["webhook-id"] for r in got}
    for d in items:
        assert d["state"] == "succeeded" and d["url"] == rx.url("/all") and len(d["attempts"]) == 1
        attempt = d["attempts"][0]
        assert attempt["status_code"] == 200 and attempt["error"] is None and attempt["latency_ms"] >= 0
        assert attempt["address"] == "127.0.0.1" and attempt["attempted_at"]


def test_default_events_are_the_terminal_ones(client, stack, receiver):
    rx = receiver()
    job = speak(client, rx.url("/default"))
    assert job["webhook_events"] == ["job.succeeded", "job.failed", "job.canceled"]
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    items = deliveries(client, job["id"])
    assert [d["event_type"] for d in items] == ["job.succeeded"]
    assert [r["path"] for r in rx.wait_for("/default", 1)] == ["/default"]


def test_retries_on_500_and_stop_at_2xx(client, stack, receiver):
    rx = receiver({"/flaky": [{"status": 500}, {"status": 502}, {"status": 200}]})
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    job = speak(client, rx.url("/flaky"))
    wait_for_job(client, job["id"])
    [delivery] = deliveries(client, job["id"])
    assert delivery["state"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 502, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    got = rx.requests("/flaky")
    assert len(got) == 3
    assert {r["headers"]["webhook-id"] for r in got} == {delivery["webhook_id"]}  # stable across retries
    assert all(verified(secret, r)["type"] == "job.succeeded" for r in got)
    time.sleep(2)  # longer than the whole retry schedule: nothing more comes after the 2xx
    assert len(rx.requests("/flaky")) == 3


def test_gives_up_when_the_schedule_is_spent(client, stack, receiver):
    rx = receiver({"/down": [{"status": 500}]})
    job = speak(client, rx.url("/down"))
    wait_for_job(client, job["id"])
    [delivery] = deliveries(client, job["id"])
    tries = 1 + len(RETRY_SCHEDULE.split(","))
    assert delivery["state"] == "failed" and delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempts"]] == [500] * tries
    assert len(rx.requests("/down")) == tries


def test_retry_after_is_honored(client, stack, receiver):
    rx = receiver({"/busy": [{"status": 503, "headers": {"Retry-After": "3"}}, {"status": 200}]})
    job = speak(client, rx.url("/busy"))
    wait_for_job(client, job["id"])
    [delivery] = deliveries(client, job["id"])
    first, second = delivery["attempts"]
    assert (first["status_code"], second["status_code"]) == (503, 200)
    # the schedule says 0.5 s; the receiver asked for 3 s, and the longer wait wins
    waited = datetime.fromisoformat(second["attempted_at"]) - datetime.fromisoformat(first["attempted_at"])
    assert waited.total_seconds() >= 3


def test_a_slow_receiver_times_out_and_is_retried(client, stack, receiver):
    rx = receiver({"/slow": [{"sleep": 6, "status": 200}, {"status": 200}]})
    job = speak(client, rx.url("/slow"))
    wait_for_job(client, job["id"])
    [delivery] = deliveries(client, job["id"])
    first, second = delivery["attempts"]
    assert first["status_code"] is None and "timed out" in first["error"]
    assert second["status_code"] == 200 and delivery["state"] == "succeeded"


def test_a_failed_job_sends_job_failed(client, stack, workers, receiver, tmp_path):
    """A worker whose catalog lacks the magnet weights fails the job at once: job.failed is sent."""
    empty = tmp_path / "no-models"
    empty.mkdir()
    workers.start(
        queues="magnet", env={"SOUNDBOX_CATALOG": "default", "SOUNDBOX_MODELS_DIR": str(empty), "HF_HOME": str(empty)}
    )
    rx = receiver()
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    job = client.post(
        "/v1/generations",
        json={"model": "magnet", "prompt": "weights are missing", "duration": 10, "webhook_url": rx.url("/failed")},
    ).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "failed" and "not on this machine" in done["error"]
    [request] = rx.wait_for("/failed", 1)
    payload = verified(secret, request)
    assert payload["type"] == "job.failed" and payload["data"]["status"] == "failed"
    assert payload["data"]["error"] == done["error"]


def test_410_disables_the_url(client, stack, receiver):
    rx = receiver({"/gone": [{"status": 410}]})
    url = rx.url("/gone")
    job = speak(client, url, webhook_events=["job.started", "job.succeeded"])
    wait_for_job(client, job["id"])
    items = deliveries(client, job["id"], until=lambda items: len(items) == 2)
    by_type = {d["event_type"]: d for d in items}
    assert by_type["job.started"]["state"] == "disabled"
    assert [a["status_code"] for a in by_type["job.started"]["attempts"]] == [410]
    assert by_type["job.succeeded"]["state"] == "skipped" and by_type["job.succeeded"]["attempts"] == []
    assert "410" in by_type["job.succeeded"]["last_error"]
    assert [d["url"] for d in client.get("/v1/webhooks/disabled").json()] == [url]
    later = speak(client, url, text="Nobody is listening any more.")
    wait_for_job(client, later["id"])
    assert [d["state"] for d in deliveries(client, later["id"])] == ["skipped"]
    assert len(rx.requests("/gone")) == 1  # only the try that got the 410
    # another account's deliveries to the same URL are its own business
    other = httpx.Client(base_url=str(client.base_url), headers={"Authorization": f"Bearer {make_key('other')}"})
    assert other.get("/v1/webhooks/disabled").json() == []
    assert client.delete("/v1/webhooks/disabled", params={"url": url}).status_code == 204
    assert client.get("/v1/webhooks/disabled").json() == []
    assert client.delete("/v1/webhooks/disabled", params={"url": url}).status_code == 404


def test_secret_rotation_signs_with_both_secrets(api_url, stack, receiver):
    key = make_key("rotating account")
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        old = c.get("/v1/webhooks/secret").json()
        assert c.get("/v1/webhooks/secret").json()["secret"] == old["secret"]  # stable until rotated
        assert old["rotated_at"] is None and old["previous_secret_expires_at"] is None
        rotated = c.post("/v1/webhooks/secret/rotate")
        assert rotated.status_code == 200
        new = rotated.json()
        assert new["secret"].startswith("whsec_") and new["secret"] != old["secret"]
        assert new["rotated_at"] and new["previous_secret_expires_at"]
        assert c.get("/v1/webhooks/secret").json()["secret"] == new["secret"]
        rx = receiver()
        job = speak(c, rx.url("/rotated"))
        [request] = rx.wait_for("/rotated", 1)
        assert len(request["headers"]["webhook-signature"].split(" ")) == 2
        for secret in (old["secret"], new["secret"]):
            assert verified(secret, request)["data"]["id"] == job["id"]
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {make_key('x')}"}) as c:
        assert c.get("/v1/webhooks/secret").json()["secret"] not in (old["secret"], new["secret"])


def test_another_accounts_job_webhooks_are_404(client, api_url, stack, receiver):
    job = speak(client, receiver().url("/mine"))
    with httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {make_key('nosy')}"}) as c:
        resp = c.get(f"/v1/jobs/{job['id']}/webhooks")
        assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/problem+json")
    wait_for_job(client, job["id"])


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.20:8080/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://127.0.0.2/hook", "loopback"),  # loopback, but not the allowlisted 127.0.0.1
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0:80/hook", "unspecified"),
        ("ftp://example.com/hook", "http"),
        ("http://user:secret@example.com/hook", "credentials"),
        ("not a url", "white space"),
    ],
)
def test_unsafe_webhook_urls_are_refused_at_submit(client, url, reason):
    before = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
    resp = client.post("/v1/generations", json={"model": "voice", "prompt": "Never sent.", "webhook_url": url})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    [error] = resp.json()["errors"]
    assert error["field"] == "webhook_url" and reason in error["message"]
    assert client.get("/v1/jobs", params={"limit": 100}).json()["items"] == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({"webhook_events": ["job.succeeded"]}, "webhook_events"),  # events without a URL
        ({"webhook_url": "http://127.0.0.1:9/x", "webhook_events": ["job.exploded"]}, "webhook_events"),
        ({"webhook_url": "http://127.0.0.1:9/x", "webhook_events": []}, "webhook_events"),
        ({"webhook_url": "http://127.0.0.1:9/" + "x" * 2100}, "webhook_url"),
    ],
)
def test_bad_webhook_fields_are_named(client, body, field):
    resp = client.post("/v1/generations", json={"model": "voice", "prompt": "Never sent.", **body})
    assert resp.status_code == 422 and field in {e["field"].split(".")[0] for e in resp.json()["errors"]}, resp.text
