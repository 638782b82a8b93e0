"""The ``Idempotency-Key`` header of POST /v1/generations: its syntax. What a key means (remember,
replay, conflict) is the domain's: shared/domain/idempotency.py."""

from __future__ import annotations

import re

from fastapi.exceptions import RequestValidationError

from shared.domain.idempotency import NAME as HEADER

__all__ = ["HEADER", "check_key"]
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, like a UUID or any opaque token


def check_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not _KEY.match(key):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header", HEADER),
                    "input": raw,
                    "msg": "must be 1-255 visible ASCII characters (a UUID is a good key)",
                }
            ]
        )
    return key
