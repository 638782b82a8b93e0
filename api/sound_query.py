"""The query parameters every sound listing shares (GET /v1/sounds, GET /v1/library) and the page
they produce."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlmodel import Session

from api.presenters import sound_out
from shared.domain import library
from shared.domain.catalog import ModelId
from shared.domain.schemas import SoundList


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def sound_query(
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Full-text search over title and prompt: every word must match, each as a prefix.",
        ),
    ] = None,
    model: Annotated[ModelId | None, Query()] = None,
    kind: Annotated[Literal["music", "sfx", "speech"] | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=64, description="A category name (GET /v1/categories).")] = None,
    tag: Annotated[list[str] | None, Query(max_length=20, description="Repeat for several; all must match.")] = None,
    min_duration: Annotated[float | None, Query(ge=0)] = None,
    max_duration: Annotated[float | None, Query(ge=0)] = None,
    loopable: Annotated[bool | None, Query()] = None,
    quality: Annotated[
        Literal["passed", "accepted_anyway"] | None,
        Query(description="passed: an attempt passed the quality check; accepted_anyway: none did, the best was kept"),
    ] = None,
    created_after: Annotated[datetime | None, Query(description="ISO 8601, inclusive (UTC when no offset).")] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601, exclusive (UTC when no offset).")] = None,
    sort: Annotated[
        Literal["recent", "duration", "relevance"],
        Query(
            description="recent (newest first, the default), duration (shortest first; order=desc for longest), "
            "relevance (best match first; needs q)"
        ),
    ] = "recent",
    order: Annotated[
        Literal["asc", "desc"] | None,
        Query(description="Flips recent (asc: oldest first) or duration (desc: longest first)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> library.SoundQuery:
    return library.SoundQuery(
        q=q,
        model=model,
        kind=kind,
        category=category,
        tags=tag or [],
        min_duration=min_duration,
        max_duration=max_duration,
        loopable=loopable,
        quality=quality,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        sort=sort,
        order=order,
        limit=limit,
        cursor=cursor,
    )


SoundQueryDep = Annotated[library.SoundQuery, Depends(sound_query)]


def list_page(
    request: Request, session: Session, query: library.SoundQuery, scope: library.Scope, viewer: uuid.UUID | None = None
) -> SoundList:
    try:
        sounds, next_cursor = library.page(session, query, scope)
    except library.InvalidQuery as exc:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", exc.field),
                    "msg": exc.message,
                    "input": getattr(query, exc.field, None),
                }
            ]
        ) from None
    return SoundList(items=[sound_out(request, s, viewer) for s in sounds], next_cursor=next_cursor)
