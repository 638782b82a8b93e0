"""The S3 backend of the object store: any S3-compatible service (AWS S3, MinIO, Ceph RGW, R2, ...).

Chosen with ``SOUNDBOX_STORAGE_URL=s3://bucket/prefix``. The endpoint is ``SOUNDBOX_S3_ENDPOINT_URL``
(or the standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), region and credentials come from
the standard AWS variables and files (``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
instance roles, ...), exactly as boto3 finds them.

- Transient errors (throttling, 5xx, dropped connections) are retried by botocore's ``standard``
  retry mode, ``SOUNDBOX_S3_MAX_ATTEMPTS`` tries in all; what still fails is
  :class:`StoreUnavailable` (the API answers 503 with ``Retry-After``).
- A missing object is :class:`ObjectNotFound`, as with the local store.
- Objects of ``SOUNDBOX_S3_MULTIPART_THRESHOLD`` bytes or more go up with boto3's managed
  transfer (multipart, parts uploaded in parallel); smaller ones in one ``PutObject``.
- ``stream`` asks S3 for the byte range itself, so a Range request never reads the whole object.
- :meth:`S3ObjectStore.presign` makes short-lived GET URLs for ``SOUNDBOX_STORAGE_SERVE=redirect``.

One client per process and configuration (boto3 clients are thread-safe, and building one costs
tens of milliseconds); a forked child builds its own.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from shared.infra.objects import CHUNK, InvalidKey, ObjectNotFound, StoreUnavailable, check_key, check_prefix
from shared.settings import Settings

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); the prefix may be empty."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
        prefix += "/"
    return bucket, prefix


def configured_endpoint(explicit: str | None) -> str | None:
    """The endpoint URL in force: the setting, else the standard AWS variables, else AWS itself."""
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3ObjectStore:
    """Objects under ``prefix`` in one bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        presign_endpoint_url: str | None = None,
        addressing_style: str = "auto",
        max_attempts: int = 5,
        multipart_threshold: int = 8 * 1024 * 1024,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ):
        self.bucket = bucket
        self.prefix = (prefix.strip("/") + "/") if prefix.strip("/") else ""
        self.endpoint_url = configured_endpoint(endpoint_url)
        self.presign_endpoint_url = presign_endpoint_url or None
        if addressing_style == "auto" and self.endpoint_url:
            addressing_style = "path"  # self-hosted services (MinIO, Ceph) rarely have per-bucket host names
        self.addressing_style = addressing_style
        self.max_attempts = max_attempts
        self.multipart_threshold = multipart_threshold
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._clients: dict[tuple[int, str | None], Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ObjectStore(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url or 'AWS'})"

    # --- clients -------------------------------------------------------------------------------

    def _client_for(self, endpoint: str | None) -> Any:
        key = (os.getpid(), endpoint)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        signature_version="s3v4",
                        retries={"max_attempts": self.max_attempts, "mode": "standard"},
                        connect_timeout=self.connect_timeout,
                        read_timeout=self.read_timeout,
                        max_pool_connections=64,
                        s3={"addressing_style": self.addressing_style},
                        # plain S3 semantics: S3-compatible services differ on the newer default checksums
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    )
                    session = boto3.session.Session()
                    client = session.client("s3", endpoint_url=endpoint, config=config)
                    self._clients = {k: v for k, v in self._clients.items() if k[0] == os.getpid()}
                    self._clients[key] = client
        return client

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process."""
        return self._client_for(self.endpoint_url)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """botocore's errors as the store's: ObjectNotFound or StoreUnavailable."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _MISSING_CODES or (status == 404 and code != "NoSuchBucket"):
                raise ObjectNotFound(key) from None
            raise StoreUnavailable(
                f"S3 answered {code or status} for s3://{self.bucket}/{self.prefix}{key}: "
                f"{error.get('Message', '')}".rstrip(": ")
            ) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise StoreUnavailable(f"S3 at {self.endpoint_url or 'AWS'} failed: {exc}") from exc

    # --- the ObjectStore interface -----------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        name = self._name(key)
        extra = {"ContentType": content_type} if content_type else {}
        with self._errors(key):
            if len(data) < self.multipart_threshold:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)
            else:
                from boto3.s3.transfer import TransferConfig

                transfer = TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=self.multipart_threshold,
                    max_concurrency=4,
                )
                self.client.upload_fileobj(
                    io.BytesIO(data), self.bucket, name, ExtraArgs=extra or None, Config=transfer
                )

    def get(self, key: str) -> bytes:
        name = self._name(key)
        with self._errors(key):
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def stream(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start``..``end`` inclusive. The request is made here (a missing object raises
        at once); the body is read as the iterator is consumed."""
        from botocore.exceptions import ClientError

        name = self._name(key)
        args = {"Range": f"bytes={start}-{'' if end is None else end}"} if start or end is not None else {}
        with self._errors(key):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=name, **args)["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # start at or past the end
                    return iter(())
                raise

        def chunks() -> Iterator[bytes]:
            try:
                with self._errors(key):
                    yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return chunks()

    def size(self, key: str) -> int:
        name = self._name(key)
        with self._errors(key):
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        with self._errors(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]

    def delete_prefix(self, prefix: str) -> int:
        if not check_prefix(prefix):
            raise InvalidKey("refusing to delete the whole store: give a prefix")
        prefix = prefix if prefix.endswith("/") else prefix + "/"  # a folder, never a string prefix
        count = 0
        batch: list[str] = []

        def flush() -> int:
            with self._errors(prefix):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": self.prefix + k} for k in batch], "Quiet": True}
                )
            errors = answer.get("Errors", [])
            if errors:
                raise StoreUnavailable(
                    f"S3 did not delete {len(errors)} objects under {prefix!r}: "
                    f"{errors[0].get('Code')} {errors[0].get('Message', '')}"
                )
            return len(batch)

        for key in list(self.list(prefix)):
            batch.append(key)
            if len(batch) == 1000:  # DeleteObjects takes at most 1000 keys
                count += flush()
                batch = []
        if batch:
            count += flush()
        return count

    def check(self) -> None:
        """Raise StoreUnavailable unless the bucket answers (readiness)."""
        try:
            with self._errors(""):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound:  # HEAD has no body: a missing bucket is a bare 404
            raise StoreUnavailable(f"no bucket {self.bucket!r} at {self.endpoint_url or 'AWS'}") from None

    # --- presigned URLs ----------------------------------------------------------------------------

    def presign(
        self, key: str, expires: int, content_type: str | None = None, content_disposition: str | None = None
    ) -> str:
        """A GET URL for ``key`` valid ``expires`` seconds; the response carries ``content_type``
        and ``content_disposition`` when given. Signed locally: no request is made."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        client = self._client_for(self.presign_endpoint_url) if self.presign_endpoint_url else self.client
        with self._errors(key):
            return str(client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires)))


def s3_store_from_settings(settings: Settings) -> S3ObjectStore:
    bucket, prefix = parse_s3_url(settings.storage_url)
    return S3ObjectStore(
        bucket,
        prefix,
        endpoint_url=settings.s3_endpoint_url,
        presign_endpoint_url=settings.s3_presign_endpoint_url,
        addressing_style=settings.s3_addressing_style,
        max_attempts=settings.s3_max_attempts,
        multipart_threshold=settings.s3_multipart_threshold,
    )


@lru_cache(maxsize=8)
def _cached(
    url: str, endpoint: str | None, presign_endpoint: str | None, style: str, attempts: int, threshold: int
) -> S3ObjectStore:
    bucket, prefix = parse_s3_url(url)
    return S3ObjectStore(
        bucket,
        prefix,
        endpoint_url=endpoint,
        presign_endpoint_url=presign_endpoint,
        addressing_style=style,
        max_attempts=attempts,
        multipart_threshold=threshold,
    )


def cached_s3_store(settings: Settings) -> S3ObjectStore:
    """The process's store for these settings (built once)."""
    return _cached(
        settings.storage_url,
        configured_endpoint(settings.s3_endpoint_url),
        settings.s3_presign_endpoint_url,
        settings.s3_addressing_style,
        settings.s3_max_attempts,
        settings.s3_multipart_threshold,
    )
