"""A real S3-protocol server for the S3 store tests: moto's standalone server (``python -m
moto.server``, werkzeug over HTTP) in its own process on 127.0.0.1 at a free port, started once per
test run. Processes the tests start (API, workers) reach it over HTTP like any S3 endpoint; a test
that needs an outage starts one of its own and kills it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import _TMP, free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "soundbox-test",
    "AWS_SECRET_ACCESS_KEY": "soundbox-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    """One moto server; ``bucket()`` makes a fresh bucket, ``env()`` the settings naming it."""

    def __init__(self, timeout: float = 60) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        _TMP.mkdir(parents=True, exist_ok=True)
        self.log = _TMP / f"moto-{self.port}.log"
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.running = True
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._proc.returncode}; log: {self.log}")
            try:
                httpx.get(self.url + "/moto-api/", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server not answering; log: {self.log}") from None
                time.sleep(0.2)

    def client(self):
        """A plain boto3 client: what the tests look into the bucket with, beside the store."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self) -> str:
        name = f"soundbox-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "", **extra: str) -> dict[str, str]:
        """Environment for a process using ``s3://bucket/prefix`` on this server."""
        return {
            "SOUNDBOX_STORAGE_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "SOUNDBOX_S3_ENDPOINT_URL": self.url,
            **CREDENTIALS,
            **extra,
        }

    def stop(self) -> None:
        """Kill the server: every connection to it drops, new ones are refused."""
        if self.running:
            self._proc.kill()
            self._proc.wait(10)
            self.running = False


@pytest.fixture(scope="session")
def aws_credentials():
    """The test credentials in this process's environment (boto3 reads them there)."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    yield CREDENTIALS
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def s3_server(aws_credentials):
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_store(s3_server):
    """An S3ObjectStore on a fresh bucket, under a prefix (keys must land below it)."""
    from shared.infra.s3store import S3ObjectStore

    return S3ObjectStore(
        s3_server.bucket(),
        "deploy/one",
        endpoint_url=s3_server.url,
        max_attempts=2,
        multipart_threshold=5 * 1024 * 1024,
    )
