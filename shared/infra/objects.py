"""Object keys and the errors every object-store backend raises (:mod:`shared.infra.storage`
chooses the backend; :mod:`shared.infra.s3store` is one of them)."""

from __future__ import annotations

import re

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
CHUNK = 64 * 1024


class InvalidKey(ValueError):
    pass


class ObjectNotFound(KeyError):
    pass


class StoreUnavailable(RuntimeError):
    """The backend could not be reached or refused to work (after its own retries): an outage or
    a misconfiguration, never the caller's fault."""


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated names; no '..', no absolute paths, no empty parts."""
    if not isinstance(key, str) or len(key) > 512 or not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"invalid object key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key (or empty), optionally ending in '/'."""
    if prefix == "":
        return prefix
    check_key(prefix.removesuffix("/"))
    return prefix
