"""Who may do what: keys, ownership on every route, anonymous mode, admin-only routes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import make_key, start_api, wait_for_job


@pytest.fixture(scope="module")
def keys(database):
    return {
        "owner": make_key("owner", "premium"),
        "other": make_key("other", "premium"),
        "admin": make_key("admin", "creator", admin=True),
    }


def as_(api_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=api_url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def owned(api_url, keys, module_worker):
    """A finished job and its sound, owned by 'owner'."""
    with as_(api_url, keys["owner"]) as c:
        job = c.post("/v1/generations", json={"model": "voice", "prompt": "Mine, and mine alone."}).json()
        done = wait_for_job(c, job["id"])
    assert done["status"] == "succeeded"
    return done


def _status(api_url, key, method, path, body=None):
    with as_(api_url, key) as c:
        return c.request(method, path, json=body).status_code


@pytest.mark.parametrize(
    "method, template, expected",
    [
        # expected status for: anonymous, other account, owner, admin
        ("GET", "/v1/jobs/{job}", (401, 404, 200, 200)),
        ("POST", "/v1/jobs/{job}/cancel", (401, 404, 409, 409)),
        ("GET", "/v1/sounds/{sound}", (401, 404, 200, 200)),
        ("GET", "/v1/sounds/{sound}/audio", (401, 404, 200, 200)),
        ("GET", "/v1/sounds/{sound}/spectrogram.png", (401, 404, 200, 200)),
        ("GET", "/v1/sounds/{sound}/audio?format=flac", (401, 404, 200, 200)),
        ("GET", "/v1/sounds/{sound}/peaks?points=50", (401, 404, 200, 200)),
        ("GET", "/v1/jobs/{job}/events", (401, 404, 200, 200)),
        ("GET", "/v1/jobs/{job}/webhooks", (401, 404, 200, 200)),
        ("GET", "/v1/jobs", (401, 200, 200, 200)),
        ("GET", "/v1/webhooks/secret", (401, 200, 200, 200)),
        ("GET", "/v1/voices", (401, 200, 200, 200)),
        ("GET", "/v1/voices/en_US-joe-medium/sample", (401, 200, 200, 200)),
        ("GET", "/v1/models", (401, 200, 200, 200)),
        ("GET", "/v1/admin/queue", (401, 403, 403, 200)),
        ("GET", "/v1/admin/keys", (401, 403, 403, 200)),
        ("GET", "/metrics", (401, 403, 403, 200)),
        ("GET", "/healthz", (200, 200, 200, 200)),
        ("GET", "/readyz", (200, 200, 200, 200)),
        ("GET", "/docs", (200, 200, 200, 200)),
    ],
)
def test_route_matrix(api_url, keys, owned, method, template, expected):
    path = template.format(job=owned["id"], sound=owned["result"]["sound_id"])
    got = tuple(_status(api_url, k, method, path) for k in (None, keys["other"], keys["owner"], keys["admin"]))
    assert got == expected


def test_speech_needs_a_key(api_url, keys):
    body = {"model": "piper", "input": "Keys, please.", "voice": "en_US-joe-medium"}
    got = tuple(_status(api_url, k, "POST", "/v1/audio/speech", body) for k in (None, keys["other"], keys["admin"]))
    assert got == (401, 200, 200)


def test_listing_shows_only_own_jobs_but_all_for_admins(api_url, keys, owned):
    def ids(key):
        with as_(api_url, key) as c:
            return {j["id"] for j in c.get("/v1/jobs", params={"limit": 100}).json()["items"]}

    assert owned["id"] in ids(keys["owner"])
    assert owned["id"] not in ids(keys["other"])
    assert owned["id"] in ids(keys["admin"])


def test_submitting_needs_a_key(api_url, keys):
    body = {"model": "voice", "prompt": "Who goes there?"}
    with as_(api_url, None) as c:
        resp = c.post("/v1/generations", json=body)
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.headers["content-type"].startswith("application/problem+json") and "API key" in resp.json()["detail"]
    with as_(api_url, "sbx_not-a-real-key") as c:
        assert c.post("/v1/generations", json=body).status_code == 401
    with httpx.Client(base_url=api_url, headers={"Authorization": "Basic abc"}) as c:
        assert c.get("/v1/models").status_code == 401


def test_every_v1_route_requires_a_key(api_url):
    spec = httpx.get(api_url + "/openapi.json").json()
    some_id = str(uuid.uuid4())
    checked = 0
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/") or path == "/v1/library":  # public sounds: no key unless the setting asks
            continue
        concrete = path
        for name in ("job_id", "sound_id", "key_ref", "voice_id", "id"):
            concrete = concrete.replace("{" + name + "}", some_id)
        for method in operations:
            resp = httpx.request(method.upper(), api_url + concrete, json={})
            assert resp.status_code == 401, (method, path, resp.status_code)
            checked += 1
    assert checked >= 10


def test_anonymous_mode_acts_as_one_shared_account(database, keys):
    url, proc = start_api({"SOUNDBOX_ALLOW_ANONYMOUS": "true"})
    try:
        with as_(url, None) as anon:
            job = anon.post("/v1/generations", json={"model": "voice", "prompt": "Hello, nobody."})
            assert job.status_code == 202
            job_id = job.json()["id"]
            assert anon.get(f"/v1/jobs/{job_id}").status_code == 200
            anon.post(f"/v1/jobs/{job_id}/cancel")
        with as_(url, keys["owner"]) as owner:
            assert owner.get(f"/v1/jobs/{job_id}").status_code == 404
        with as_(url, "sbx_wrong") as bad:  # a wrong key is refused even when anonymous access is on
            assert bad.get("/v1/models").status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


def test_admin_manages_keys_over_http(api_url, keys):
    with as_(api_url, keys["admin"]) as admin:
        created = admin.post("/v1/admin/keys", json={"name": "made over http", "tier": "supporter"})
        assert created.status_code == 201
        new = created.json()
        assert new["key"].startswith("sbx_") and new["tier"] == "supporter" and not new["admin"]
        listed = {k["prefix"]: k for k in admin.get("/v1/admin/keys").json()}
        assert new["prefix"] in listed and "key" not in listed[new["prefix"]]
        with as_(api_url, new["key"]) as user:
            assert user.get("/v1/models").status_code == 200
            assert admin.post(f"/v1/admin/keys/{new['prefix']}/revoke").json()["revoked_at"]
            assert user.get("/v1/models").status_code == 401
        assert admin.post("/v1/admin/keys/nope/revoke").status_code == 404
        assert "tier" in {
            e["field"] for e in admin.post("/v1/admin/keys", json={"name": "x", "tier": "gold"}).json()["errors"]
        }


def test_cors_for_configured_origins(database):
    url, proc = start_api({"SOUNDBOX_CORS_ORIGINS": '["https://app.example"]'})
    try:
        preflight = httpx.options(
            url + "/v1/generations",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = httpx.options(
            url + "/v1/generations", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        proc.terminate()
        proc.wait(10)
