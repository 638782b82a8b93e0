"""docker-compose.yml, without a container engine: valid against the Compose Specification's JSON
schema (the copy check-jsonschema ships, Apache-2.0, from github.com/compose-spec/compose-spec),
and shaped as docs/operations.md says: Celery-safe Redis, PostgreSQL and MinIO on volumes, a
bucket made before anything uses it, health checks on every long-running service, two GPU
workers on two host GPUs, and settings the service really reads."""

from __future__ import annotations

import copy
import json
import re
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared.infra import registry
from shared.infra.s3store import S3ObjectStore
from shared.infra.storage import get_store
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ONE_SHOT = {"minio-init"}


def compose_schema() -> dict:
    return json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def schema_errors(document: dict) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def interpolate(value: str) -> str:
    """Compose's ``${NAME:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_valid_against_the_compose_spec(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["healthcheck"]["intervall"] = "5s"  # misspelt
    broken["services"]["api"]["depend_on"] = ["redis"]  # misspelt
    broken["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] = 1
    errors = schema_errors(broken)
    assert any("intervall" in e for e in errors)
    assert any("depend_on" in e for e in errors)
    assert any("device_ids" in e for e in errors)


def test_redis_is_configured_for_celery(compose):
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert redis["volumes"] == ["redisdata:/data"]


def test_state_lives_on_named_volumes(compose):
    services, volumes = compose["services"], compose["volumes"]
    for service, mount in (
        ("postgres", "pgdata:/var/lib/postgresql/data"),
        ("redis", "redisdata:/data"),
        ("minio", "miniodata:/data"),
    ):
        assert mount in services[service]["volumes"] and mount.split(":")[0] in volumes


def test_health_checks_everywhere_and_start_order(compose):
    services = compose["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no" and "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, condition in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == {"condition": wanted}, (name, dependency)
    assert set(services["minio-init"]["depends_on"]) == {"minio"}
    for name in ("api", "worker", "worker-gpu1"):
        assert "minio-init" in services[name]["depends_on"]
    # the worker health check looks for the worker's own registry entry
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert f"'{registry.PREFIX}' + socket.gethostname()" in worker_check
    assert services["webhooks"]["healthcheck"]["test"] == services["worker"]["healthcheck"]["test"]


def test_the_bucket_the_service_uses_is_created(compose):
    services = compose["services"]
    url = services["api"]["environment"]["SOUNDBOX_STORAGE_URL"]
    bucket = url.removeprefix("s3://").split("/")[0]
    script = " ".join(services["minio-init"]["command"])
    assert f"mc mb --ignore-existing store/{bucket}" in script
    assert "mc alias set store http://minio:9000" in script
    assert services["api"]["environment"]["SOUNDBOX_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_two_gpu_workers_on_two_host_gpus(compose):
    services = compose["services"]
    reserved = {}
    for name in ("worker", "worker-gpu1"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        reserved[name] = device["device_ids"]
        command = services[name]["command"]
        assert command[:2] == ["soundbox", "worker"]
        # the one GPU passed into a container is its first CUDA device
        assert command[command.index("--device") + 1] == "cuda:0"
        assert not any(v.endswith(":/data") for v in services[name]["volumes"])  # no shared disk
    assert reserved == {"worker": ["0"], "worker-gpu1": ["1"]}


def test_every_service_reads_settings_that_exist(compose, monkeypatch):
    """The environment the containers get makes a Settings object and an S3 store as intended."""
    services = compose["services"]
    known = set(Settings.model_fields)
    for name in ("api", "webhooks", "worker", "worker-gpu1"):
        env = services[name]["environment"]
        assert env == services["api"]["environment"], name  # one shared environment
    env = {k: interpolate(str(v)) for k, v in services["api"]["environment"].items()}
    for key in env:
        if key.startswith("SOUNDBOX_"):
            assert key.removeprefix("SOUNDBOX_").lower() in known, key
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://soundbox:soundbox@postgres:5432/soundbox"
    store = get_store(settings)
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix, store.endpoint_url, store.addressing_style) == (
        "soundbox",
        "media/",
        "http://minio:9000",
        "path",
    )
    # the credentials the services use are MinIO's root credentials
    minio = services["minio"]["environment"]
    assert interpolate(minio["MINIO_ROOT_USER"]) == env["AWS_ACCESS_KEY_ID"]
    assert interpolate(minio["MINIO_ROOT_PASSWORD"]) == env["AWS_SECRET_ACCESS_KEY"]
    assert len(env["AWS_SECRET_ACCESS_KEY"]) >= 8  # MinIO refuses shorter root passwords


def test_images_install_boto3():
    """Both images install the project's dependencies, which include the S3 client."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("boto3") for d in project["dependencies"])
    assert "pip install ." in (ROOT / "Dockerfile.api").read_text()
    assert 'pip install ".[worker]"' in (ROOT / "Dockerfile.worker").read_text()
