"""Serving objects from the store: streamed through the API with HTTP Range support (single
ranges, RFC 9110), or -- ``SOUNDBOX_STORAGE_SERVE=redirect`` with a store that can presign (S3) --
a 307 to a presigned URL valid ``SOUNDBOX_STORAGE_PRESIGN_SECONDS``. Callers check ownership
first; both ways answer a missing object with ObjectNotFound (the route's 404) before any byte or
redirect goes out, and an unreachable store with StoreUnavailable (503, see api/problems.py)."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from api.problems import problem
from shared.infra.storage import ObjectStore
from shared.settings import get_settings

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$", re.ASCII)


def _parse(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive, or None when the range cannot be satisfied."""
    m = _RANGE.match(header.strip())
    if not m:
        return None
    if m.group(1) == "":  # suffix: the last N bytes
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def redirect_to_presigned(
    store: ObjectStore, key: str, media_type: str, headers: dict[str, str] | None = None
) -> Response | None:
    """A 307 to a presigned URL of ``key`` when the settings ask for redirects and the store can
    presign; None otherwise. The object's existence is checked first (a missing object is a 404
    here, not a redirect to the store's own error)."""
    settings = get_settings()
    presign = getattr(store, "presign", None)
    if settings.storage_serve != "redirect" or presign is None:
        return None
    store.size(key)
    headers = headers or {}
    url = presign(
        key,
        settings.storage_presign_seconds,
        content_type=media_type,
        content_disposition=headers.get("Content-Disposition"),
    )
    extra = {"Cache-Control": "private, no-store"}  # the URL expires: never cache the redirect
    if "Vary" in headers:
        extra["Vary"] = headers["Vary"]
    return RedirectResponse(url, status_code=307, headers=extra)


def serve_object(
    request: Request, store: ObjectStore, key: str, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    redirect = redirect_to_presigned(store, key, media_type, headers)
    if redirect is not None:
        return redirect
    size = store.size(key)
    base = {"Accept-Ranges": "bytes", **(headers or {})}
    header = request.headers.get("range")
    # Multi-range requests, other units (items=0-1) and malformed ranges are ignored (RFC 9110
    # 14.2): the whole object, 200. Only a well-formed byte range outside the object gets 416.
    if header and "," not in header and _RANGE.match(header.strip()) and header.strip() != "bytes=-":
        span = _parse(header, size)
        if span is None:
            return problem(
                request,
                416,
                f"range {header!r} not satisfiable for {size} bytes",
                headers={**base, "Content-Range": f"bytes */{size}"},
            )
        start, end = span
        return StreamingResponse(
            store.stream(key, start, end),
            status_code=206,
            media_type=media_type,
            headers={**base, "Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)},
        )
    return StreamingResponse(store.stream(key), media_type=media_type, headers={**base, "Content-Length": str(size)})
