"""Object store: audio and images by key. The database holds keys, never paths.

The interface is deliberately small (put, get, stream, size, exists, delete, delete_prefix) so an
S3-compatible backend can sit behind it when the service spans several machines.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from shared.settings import Settings

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
CHUNK = 64 * 1024


class InvalidKey(ValueError):
    pass


class ObjectNotFound(KeyError):
    pass


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated names; no '..', no absolute paths, no empty parts."""
    if not isinstance(key, str) or len(key) > 512 or not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"invalid object key: {key!r}")
    return key


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
        """Delete every object whose key starts with ``prefix`` + '/' (a folder); returns how many."""
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

    def delete_prefix(self, prefix: str) -> int:
        folder = self._path(prefix.rstrip("/"))
        if folder == self.root or not folder.is_dir():
            return 0
        count = 0
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):  # a file written meanwhile keeps its folder
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)
                count += 1
        with contextlib.suppress(OSError):
            folder.rmdir()
        return count


def get_store(settings: Settings) -> ObjectStore:
    return LocalObjectStore(settings.storage_dir)


def sound_prefix(sound_id: str) -> str:
    """The folder holding every object of a sound (audio, converted formats, peaks, spectrogram)."""
    return f"sounds/{sound_id}"


def sound_keys(sound_id: str) -> tuple[str, str]:
    """Object keys of a sound's audio and spectrogram."""
    return f"sounds/{sound_id}/audio.wav", f"sounds/{sound_id}/spectrogram.png"
