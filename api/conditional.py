"""Conditional requests: the one If-None-Match check (sounds, peaks, spectrograms, voice samples)."""

from __future__ import annotations

from fastapi import Request


def not_modified(request: Request, etag: str) -> bool:
    """Whether If-None-Match names ``etag`` (or is ``*``); weak and strong tags compare alike."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags
