"""Object store: audio and images by key. The database holds keys, never paths.

Two backends behind one small interface (put, get, stream, size, exists, delete, delete_prefix,
list), chosen by ``SOUNDBOX_STORAGE_URL``:

- unset or ``file:///path``: :class:`LocalObjectStore`, files under ``SOUNDBOX_STORAGE_DIR`` (or
  the path of the URL) -- one host, or a shared filesystem;
- ``s3://bucket/prefix``: :class:`S3ObjectStore` (:mod:`shared.infra.s3store`), any
  S3-compatible service -- the API and workers on many hosts share the bucket.

Errors are the same for both: :class:`ObjectNotFound` for a missing object,
:class:`StoreUnavailable` when the backend cannot be reached (the API answers 503 with
``Retry-After``), :class:`InvalidKey` for a key that is not a plain relative name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from shared.infra.objects import CHUNK, InvalidKey, ObjectNotFound, StoreUnavailable, check_key, check_prefix
from shared.settings import Settings

__all__ = [
    "CHUNK",
    "InvalidKey",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "StoreUnavailable",
    "check_key",
    "check_prefix",
    "get_store",
]


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def get(self, key: str) -> bytes: ...
    def stream(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start``..``end`` inclusive (to the end when ``end`` is None)."""
        ...

    def size(self, key: str) -> int: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object in the folder ``prefix`` (a trailing '/' is implied: ``sounds/a``
        never touches ``sounds/ab``); returns how many were deleted."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """The keys starting with ``prefix``, in key order."""
        ...

    def check(self) -> None:
        """Raise StoreUnavailable when the store cannot be used (readiness)."""
        ...


class LocalObjectStore:
    """Files under one root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def stream(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

        def chunks() -> Iterator[bytes]:
            with f:
                f.seek(start)
                remaining = None if end is None else end - start + 1
                while remaining is None or remaining > 0:
                    block = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                    if not block:
                        return
                    if remaining is not None:
                        remaining -= len(block)
                    yield block

        return chunks()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        if not self.root.is_dir():
            return iter(())
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete_prefix(self, prefix: str) -> int:
        if not check_prefix(prefix):
            raise InvalidKey("refusing to delete the whole store: give a prefix")
        prefix = prefix if prefix.endswith("/") else prefix + "/"  # a folder, never a string prefix
        count = 0
        for key in list(self.list(prefix)):
            path = self._path(key)
            try:
                path.unlink()
                count += 1
            except FileNotFoundError:
                continue
            parent = path.parent  # drop folders left empty, up to the root
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
        return count

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"the storage folder {self.root} cannot be used: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"the storage folder {self.root} is not writable")


def get_store(settings: Settings) -> ObjectStore:
    """The store ``settings`` name: S3 for ``s3://`` URLs, else the local folder. One S3 client
    per process and configuration (clients are thread-safe and costly to build)."""
    url = settings.storage_url.strip()
    if url.startswith("s3://"):
        from shared.infra.s3store import cached_s3_store

        return cached_s3_store(settings)
    if url.startswith("file://"):
        return LocalObjectStore(Path(url.removeprefix("file://")).expanduser())
    if url:
        raise ValueError(f"SOUNDBOX_STORAGE_URL must be s3://bucket[/prefix] or file:///path, not {url!r}")
    return LocalObjectStore(settings.storage_dir)


def sound_prefix(sound_id: str) -> str:
    """The folder holding every object of a sound (audio, converted formats, peaks, spectrogram)."""
    return f"sounds/{sound_id}/"


def sound_keys(sound_id: str) -> tuple[str, str]:
    """Object keys of a sound's audio and spectrogram."""
    return f"sounds/{sound_id}/audio.wav", f"sounds/{sound_id}/spectrogram.png"
