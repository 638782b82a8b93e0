"""The public library (GET /v1/library) and categories with counts (GET /v1/categories)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from api.auth import OptionalPrincipal, SignedIn, signed_in
from api.deps import SessionDep, SettingsDep
from api.sound_query import SoundQueryDep, list_page
from shared.domain import library
from shared.domain.schemas import CategoryList, SoundList

router = APIRouter(tags=["library"])


@router.get("/v1/library", response_model=SoundList)
def list_library(
    request: Request, session: SessionDep, settings: SettingsDep, principal: OptionalPrincipal, query: SoundQueryDep
) -> SoundList:
    """Public sounds of every account, newest first; the same search, filters and cursors as
    `GET /v1/sounds`. Without an API key unless `SOUNDBOX_LIBRARY_REQUIRES_KEY` is on."""
    if principal is None and settings.library_requires_key:
        signed_in(principal)  # 401
    return list_page(request, session, query, library.Scope.library(), principal.account.id if principal else None)


@router.get("/v1/categories", response_model=CategoryList)
def list_categories(
    session: SessionDep,
    principal: SignedIn,
    scope: Annotated[
        Literal["mine", "library"],
        Query(description="mine: your sounds (every account's for admins); library: public sounds"),
    ] = "mine",
) -> CategoryList:
    """Every category of the caller's sounds with how many sounds have it, most common first."""
    where = (
        library.Scope.library() if scope == "library" else library.Scope.mine(principal.account.id, principal.is_admin)
    )
    return CategoryList.model_validate({"categories": library.category_counts(session, where)})
