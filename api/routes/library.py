"""The public library (GET /v1/library), categories with counts (GET /v1/categories), and the
query parameters every sound listing shares (GET /v1/sounds uses them too)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from api.auth import OptionalPrincipal, SignedIn, signed_in
from api.deps import SessionDep, SettingsDep
from api.presenters import sound_out
from shared.domain import library
from shared.domain.schemas import CategoryList, SoundList

router = APIRouter(tags=["library"])


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def sound_query(
    q: Annotated[str | None, Query(max_length=200, description="Full-text search over title and prompt: every "
                                                               "word must match, each as a prefix.")] = None,
    model: Annotated[Literal["music", "audio", "magnet", "voice"] | None, Query()] = None,
    kind: Annotated[Literal["music", "sfx", "speech"] | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=64, description="A category name (GET /v1/categories).")] = None,
    tag: Annotated[list[str] | None, Query(max_length=20, description="Repeat for several; all must match.")] = None,
    min_duration: Annotated[float | None, Query(ge=0)] = None,
    max_duration: Annotated[float | None, Query(ge=0)] = None,
    loopable: Annotated[bool | None, Query()] = None,
    quality: Annotated[Literal["passed", "accepted_anyway"] | None, Query(
        description="passed: an attempt passed the quality check; accepted_anyway: none did, the best was kept")] = None,
    created_after: Annotated[datetime | None, Query(description="ISO 8601, inclusive (UTC when no offset).")] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601, exclusive (UTC when no offset).")] = None,
    sort: Annotated[Literal["recent", "duration", "relevance"], Query(
        description="recent (newest first, the default), duration (shortest first; order=desc for longest), "
                    "relevance (best match first; needs q)")] = "recent",
    order: Annotated[Literal["asc", "desc"] | None, Query(
        description="Flips recent (asc: oldest first) or duration (desc: longest first).")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> library.SoundQuery:
    return library.SoundQuery(q=q, model=model, kind=kind, category=category, tags=tag or [],
                              min_duration=min_duration, max_duration=max_duration, loopable=loopable,
                              quality=quality, created_after=_utc(created_after),
                              created_before=_utc(created_before), sort=sort, order=order, limit=limit,
                              cursor=cursor)


SoundQueryDep = Annotated[library.SoundQuery, Depends(sound_query)]


def list_page(request: Request, session, query: library.SoundQuery, scope: library.Scope,
              viewer=None) -> SoundList:
    try:
        sounds, next_cursor = library.page(session, query, scope)
    except library.InvalidQuery as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", exc.field), "msg": exc.message,
                                       "input": getattr(query, exc.field, None)}]) from None
    return SoundList(items=[sound_out(request, s, viewer) for s in sounds], next_cursor=next_cursor)


@router.get("/v1/library", response_model=SoundList)
def list_library(request: Request, session: SessionDep, settings: SettingsDep, principal: OptionalPrincipal,
                 query: SoundQueryDep) -> SoundList:
    """Public sounds of every account, newest first; the same search, filters and cursors as
    `GET /v1/sounds`. Without an API key unless `SOUNDBOX_LIBRARY_REQUIRES_KEY` is on."""
    if principal is None and settings.library_requires_key:
        signed_in(principal)  # 401
    return list_page(request, session, query, library.Scope.library(), principal.account.id if principal else None)


@router.get("/v1/categories", response_model=CategoryList)
def list_categories(session: SessionDep, principal: SignedIn,
                    scope: Annotated[Literal["mine", "library"], Query(
                        description="mine: your sounds (every account's for admins); library: public sounds")] = "mine",
                    ) -> CategoryList:
    """Every category of the caller's sounds with how many sounds have it, most common first."""
    where = library.Scope.library() if scope == "library" else library.Scope.mine(principal.account.id,
                                                                                   principal.is_admin)
    return CategoryList.model_validate({"categories": library.category_counts(session, where)})

