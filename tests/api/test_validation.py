"""Bad input gets a 422 problem+json naming the field, never a 500; nothing is queued."""

from __future__ import annotations

import pytest

GOOD = {"model": "music", "prompt": "calm acoustic guitar", "duration": 2}


def problem_fields(resp) -> set[str]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == 422 and body["title"] and body["detail"]
    return {e["field"] for e in body["errors"]}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model": "banjo"}, "model"),
        ({"model": None}, "model"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "  \x00\x01 "}, "prompt"),  # only control characters and blanks
        ({"prompt": "ab"}, "prompt"),
        ({"prompt": "x" * 501}, "prompt"),  # over the 500-character limit for music
        ({"model": "voice", "prompt": "y" * 5001}, "prompt"),
        ({"duration": 0}, "duration"),
        ({"duration": 121}, "duration"),  # music goes to 120 s (in windows)
        ({"model": "audio", "duration": 31}, "duration"),
        ({"duration": 0.5}, "duration"),
        ({"model": "magnet", "duration": 12}, "duration"),
        ({"model": "magnet", "duration": 5}, "duration"),  # MAGNeT makes its checkpoint's fixed length only
        ({"top_k": 300}, "top_k"),  # above the tiny codebook (256)
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 50, "top_p": 0.9}, "top_p"),  # contradictory: top_p > 0 overrides top_k
        ({"temperature": -1}, "temperature"),
        ({"temperature": 6}, "temperature"),
        ({"cfg_coef": 25}, "cfg_coef"),
        ({"decoding_steps": [10, 10, 10, 10]}, "decoding_steps"),  # MAGNeT only
        ({"model": "magnet", "duration": 10, "decoding_steps": [10, 10]}, "decoding_steps"),  # one per codebook
        ({"model": "magnet", "duration": 10, "decoding_steps": [0, 10, 10, 10]}, "decoding_steps"),
        ({"model": "magnet", "duration": 10, "temperature": 0}, "temperature"),
        ({"model": "magnet", "duration": 10, "cfg_coef": 0.5}, "cfg_coef"),
        ({"model": "voice", "prompt": "hello there", "top_k": 10}, "top_k"),
        ({"duration": "long"}, "duration"),
        ({"priority": 10}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"seed": -5}, "seed"),
        ({"voice": "en_US-joe-medium"}, "voice"),  # a voice on a music job
        ({"model": "voice", "loopable": True, "prompt": "hello there"}, "loopable"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_generation_fields_are_named(client, change, field):
    body = {**GOOD, **change}
    assert field in problem_fields(client.post("/v1/generations", json=body))


def test_missing_prompt_is_named(client):
    assert "prompt" in problem_fields(client.post("/v1/generations", json={"model": "audio"}))


def test_body_that_is_not_json(client):
    resp = client.post("/v1/generations", content=b"{not json", headers={"content-type": "application/json"})
    assert "body" in problem_fields(resp)
    assert "JSON" in resp.json()["detail"]


def test_body_that_is_not_an_object(client):
    assert problem_fields(client.post("/v1/generations", json=["music"]))


def test_nothing_was_queued_by_bad_requests(client, redis_client):
    before = len(client.get("/v1/jobs", params={"limit": 100}).json()["items"])
    queued_before = sum(redis_client.llen(k) for k in redis_client.scan_iter("music*"))
    for bad in ({"priority": 11}, {"duration": 199}, {"prompt": ""}, {"top_p": 2}, {"cfg_coef": 99}):
        assert client.post("/v1/generations", json={**GOOD, **bad}).status_code == 422
    assert len(client.get("/v1/jobs", params={"limit": 100}).json()["items"]) == before
    assert sum(redis_client.llen(k) for k in redis_client.scan_iter("music*")) == queued_before


def test_unknown_ids_are_404_problems(client):
    for path in (
        "/v1/jobs/7b0c8f7e-1111-4a4a-9b9b-123456789abc",
        "/v1/sounds/7b0c8f7e-1111-4a4a-9b9b-123456789abc",
        "/v1/sounds/7b0c8f7e-1111-4a4a-9b9b-123456789abc/audio",
    ):
        resp = client.get(path)
        assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/problem+json")


def test_malformed_ids_and_queries_are_422(client):
    assert "job_id" in problem_fields(client.get("/v1/jobs/not-a-uuid"))
    assert "status" in problem_fields(client.get("/v1/jobs", params={"status": "sleeping"}))
    assert "limit" in problem_fields(client.get("/v1/jobs", params={"limit": 0}))
    assert "cursor" in problem_fields(client.get("/v1/jobs", params={"cursor": "!!!"}))


def test_health_models_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}
    models = client.get("/v1/models").json()
    assert models["catalog"] == "tiny"
    by_id = {m["id"]: m for m in models["models"]}
    assert set(by_id) == {"music", "audio", "magnet", "voice"}
    assert by_id["audio"]["sample_rate"] == 16000 and by_id["music"]["max_duration"] == 120
    assert by_id["audio"]["max_duration"] == 30 and by_id["magnet"]["durations"] == [10]
    assert all("checkpoint" not in m and m["hub_id"] is None for m in by_id.values())  # no server paths
    assert by_id["music"]["controls"]["top_k"] == {
        "type": "int",
        "default": 250,
        "minimum": 0,
        "maximum": 256,
        "description": by_id["music"]["controls"]["top_k"]["description"],
    }
    assert by_id["magnet"]["controls"]["decoding_steps"]["default"] == [20, 10, 10, 10]
    assert by_id["magnet"]["controls"]["temperature"]["default"] == 3.0 and by_id["voice"]["controls"] == {}
    assert all(m["state"] in ("available", "loaded") for m in by_id.values())
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/generations" in spec["paths"] and "/v1/jobs/{job_id}/cancel" in spec["paths"]
