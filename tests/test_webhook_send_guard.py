"""The SSRF guard at send time, on real processes: the API (whose allowlist admits 127.0.0.1)
accepts a receiver on 127.0.0.1, but this module's webhook worker runs without that allowlist, so
when the event is sent the address the URL resolves to is refused and nothing is sent."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Workers


@pytest.fixture(scope="module")
def strict_webhooks(redis_client, api_url):
    w = Workers(redis_client)
    w.start_webhooks(env={"SOUNDBOX_WEBHOOK_ALLOWLIST": ""})
    yield w
    w.stop_all()


def test_a_receiver_refused_at_send_time_gets_nothing(client, strict_webhooks, receiver):
    rx = receiver()
    resp = client.post(
        "/v1/generations",
        json={
            "model": "magnet",
            "prompt": "canceled before it runs",
            "duration": 10,
            "webhook_url": rx.url("/internal"),
        },
    )
    assert resp.status_code == 202, resp.text  # admitted at submit: 127.0.0.1 is on the API's allowlist
    job = resp.json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "canceled"
    deadline = time.monotonic() + 60
    while True:
        items = client.get(f"/v1/jobs/{job['id']}/webhooks").json()["items"]
        if items and items[0]["state"] != "pending":
            break
        assert time.monotonic() < deadline, items
        time.sleep(0.2)
    [delivery] = items
    assert delivery["event_type"] == "job.canceled" and delivery["state"] == "refused"
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] is None and attempt["address"] is None
    assert "127.0.0.1" in attempt["error"] and "loopback" in attempt["error"]
    time.sleep(1)
    assert rx.requests() == []  # not one byte reached the receiver
