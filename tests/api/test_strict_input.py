"""Hostile input against a real API process: each gets a clear 4xx naming the problem, never a
500, and nothing is queued for it."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import start_api

GOOD = {"model": "music", "prompt": "calm acoustic guitar", "duration": 2}


def problem_of(resp: httpx.Response, status: int = 422) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"]
    return body


def fields(resp: httpx.Response) -> set[str]:
    return {e["field"] for e in problem_of(resp)["errors"]}


def queued_count(client) -> int:
    from sqlalchemy import func
    from sqlmodel import select

    from shared.domain.models import Job
    from shared.infra.db import session_scope

    with session_scope() as session:
        return session.exec(select(func.count()).select_from(Job)).one()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"loopable": "yes"}, "loopable"),
        ({"loopable": 1}, "loopable"),
        ({"duration": True}, "duration"),
        ({"duration": "1"}, "duration"),
        ({"priority": "5"}, "priority"),
        ({"priority": 5.5}, "priority"),
        ({"seed": "7"}, "seed"),
        ({"prompt": "\u200b\u200b\u200b\u200b"}, "prompt"),  # zero-width spaces only
        ({"prompt": "\u200d\ufeff\u2060 \u00a0"}, "prompt"),  # joiners, BOM, word joiner, no-break space
        ({"prompt": "calm \ud800 guitar"}, "prompt"),  # a lone surrogate is no text
        ({"model": "voice", "prompt": "hello there", "voice": "../../../../etc/passwd"}, "voice"),
        ({"model": "voice", "prompt": "hello there", "voice": "no_SUCH-voice-medium"}, "voice"),
        ({"model": "voice", "prompt": "hello there", "voice": "\ud800"}, "voice"),
        ({"webhook_url": "http://[fec0::1]/hook"}, "webhook_url"),  # IPv6 site-local
        ({"webhook_url": "http://[3fff::1]/hook"}, "webhook_url"),  # IPv6 documentation (RFC 9637)
        ({"webhook_url": "http://[64:ff9b::a00:1]/hook"}, "webhook_url"),  # NAT64 of 10.0.0.1
        ({"webhook_url": "http://100.64.0.1/hook"}, "webhook_url"),  # shared address space
    ],
)
def test_strict_fields_are_named(client, change, field):
    before = queued_count(client)
    resp = client.post(
        "/v1/generations", content=json.dumps({**GOOD, **change}), headers={"content-type": "application/json"}
    )
    assert field in fields(resp)
    assert queued_count(client) == before


def test_integers_are_still_numbers(client):
    resp = client.post("/v1/generations", json={**GOOD, "duration": 2, "priority": 3})
    assert resp.status_code == 202, resp.text
    assert resp.json()["params"]["duration"] == 2.0


def test_c1_controls_are_stripped(client):
    resp = client.post("/v1/generations", json={**GOOD, "prompt": "calm\u0085 acoustic\u009b guitar\u0080"})
    assert resp.status_code == 202, resp.text
    assert resp.json()["params"]["prompt"] == "calm acoustic guitar"


@pytest.mark.parametrize("prefer", ["wait=²", "wait=٣", "wait=1٠", "wait=0001", "wait=-1", "wait=61"])
def test_prefer_wait_takes_ascii_digits_only(client, prefer):
    try:  # sent as the raw bytes a client would: latin-1 where it fits (² is one byte), else UTF-8
        raw = prefer.encode("latin-1")
    except UnicodeEncodeError:
        raw = prefer.encode()
    resp = client.post("/v1/generations", json=GOOD, headers={"Prefer": raw})
    assert "Prefer" in fields(resp)


def test_speech_voice_lone_surrogate_is_a_4xx(client):
    resp = client.post(
        "/v1/audio/speech",
        content=b'{"model": "piper", "input": "hello", "voice": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    resp.json()  # valid JSON although the input was not valid Unicode


def test_speech_strict_numbers(client):
    resp = client.post("/v1/audio/speech", json={"model": "piper", "input": "hello", "speed": "1.5"})
    assert "speed" in fields(resp)


@pytest.mark.parametrize(
    "path, methods",
    [
        ("/v1/generations", {"POST", "OPTIONS"}),
        ("/v1/admin/keys", {"GET", "POST", "OPTIONS"}),
        ("/v1/jobs/00000000-0000-0000-0000-000000000000", {"GET", "OPTIONS"}),
    ],
)
def test_options_and_405_list_every_method(client, path, methods):
    resp = client.options(path)
    assert resp.status_code == 204
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == methods
    wrong = client.put(path)
    assert problem_of(wrong, 405)
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == methods


def test_body_over_the_limit_is_413_before_it_is_read(client, api_url):
    # declared too large: refused from Content-Length alone, before the body is sent
    big = b'{"model": "music", "prompt": "' + b"x" * 1_100_000 + b'"}'
    problem_of(client.post("/v1/generations", content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: stopped once the streamed bytes pass the limit
        yield b'{"model": "music", "prompt": "'
        for _ in range(40):
            yield b"y" * 100_000
        yield b'"}'

    problem_of(client.post("/v1/generations", content=chunks(), headers={"content-type": "application/json"}), 413)


@pytest.fixture(scope="module")
def small_body_api(database, redis_client):
    url, proc = start_api({"SOUNDBOX_MAX_BODY_BYTES": "2000"})
    yield url
    proc.terminate()
    proc.wait(10)


def test_body_limit_is_configurable(small_body_api, api_key):
    with httpx.Client(base_url=small_body_api, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as c:
        body = problem_of(c.post("/v1/audio/speech", json={"model": "piper", "input": "a" * 3000}), 413)
        assert body["limit"] == 2000
        assert c.post("/v1/generations", json=GOOD).status_code == 202
