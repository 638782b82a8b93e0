"""The sound library: which sounds a caller may see, search and filters, ranking, stable cursors.

Two scopes share one query builder: ``mine`` (the caller's sounds; every account's for admins)
and ``library`` (public sounds of every account). Deleted sounds (tombstones) are never listed.

Search is PostgreSQL full-text search over the generated ``search_vector`` column (title weighted
above prompt, English stemming): every word of ``q`` must match, each as a prefix (``foot`` finds
"footsteps"), ranked with ``ts_rank``. Pagination is keyset pagination on the sort key plus the
id, so a page boundary never skips or repeats a sound when new sounds arrive meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, cast, false, func, literal, true, tuple_
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB, REGCONFIG
from sqlmodel import Session, col, select

from shared.domain.models import Sound, Visibility
from shared.infra.storage import ObjectStore, sound_prefix

KIND_OF_MODEL = {"music": "music", "audio": "sfx", "magnet": "music", "voice": "speech"}
MODELS_OF_KIND = {kind: [m for m, k in KIND_OF_MODEL.items() if k == kind] for kind in set(KIND_OF_MODEL.values())}
Sort = Literal["recent", "duration", "relevance"]
SEARCH_VECTOR = Sound.__table__.c.search_vector  # type: ignore[attr-defined]
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def kind_of(model: str) -> str:
    return KIND_OF_MODEL.get(model, "sfx")


class InvalidQuery(ValueError):
    """A query parameter that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass
class SoundQuery:
    q: str | None = None
    model: str | None = None
    kind: str | None = None
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    min_duration: float | None = None
    max_duration: float | None = None
    loopable: bool | None = None
    quality: Literal["passed", "accepted_anyway"] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: Sort = "recent"
    order: Literal["asc", "desc"] | None = None  # duration only: shortest first unless desc
    limit: int = 20
    cursor: str | None = None


@dataclass
class Scope:
    """Whose sounds: one account's (``account_id``), everyone's (admin, ``account_id`` None), or public ones."""

    account_id: uuid.UUID | None = None
    public_only: bool = False

    @classmethod
    def mine(cls, account_id: uuid.UUID, is_admin: bool) -> Scope:
        return cls(account_id=None if is_admin else account_id)

    @classmethod
    def library(cls) -> Scope:
        return cls(public_only=True)

    def where(self) -> ColumnElement[bool]:
        clauses: list[Any] = [col(Sound.deleted_at).is_(None)]
        if self.public_only:
            clauses.append(col(Sound.visibility) == Visibility.public.value)
        elif self.account_id is not None:
            clauses.append(col(Sound.account_id) == self.account_id)
        return and_(*clauses)


def tsquery_text(q: str) -> str | None:
    """``q`` as a to_tsquery expression: every word, each a prefix, all required. None without words."""
    words = _WORD.findall(q.lower())[:16]
    return " & ".join(f"{w}:*" for w in words) if words else None


def _tsquery(q: str) -> ColumnElement[Any]:
    return func.to_tsquery(cast(literal("english"), REGCONFIG), tsquery_text(q) or "")


def rank_expr(q: str) -> ColumnElement[float]:
    """Title matches outrank prompt matches (weights A and B); normalization 1 favours shorter texts.
    ts_rank is a ``real``, whose shortest text form does not round-trip through a Python float:
    widened to double precision here, the rank a cursor carries compares equal to the row's own,
    so ties on rank never repeat (or skip) a page."""
    return cast(func.ts_rank(SEARCH_VECTOR, _tsquery(q), 1), DOUBLE_PRECISION)


# --- cursors ------------------------------------------------------------------------------------


def encode_cursor(sort: str, keys: list[Any], sound_id: uuid.UUID) -> str:
    body = {"s": sort, "k": [k.isoformat() if isinstance(k, datetime) else k for k in keys], "id": str(sound_id)}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[list[Any], uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
        keys, ident = body["k"], uuid.UUID(body["id"])
        if body["s"] != sort:
            raise InvalidQuery("cursor", f"this cursor belongs to sort={body['s']}, not sort={sort}")
        if sort == "recent":
            return [datetime.fromisoformat(keys[0])], ident
        if sort == "duration":
            return [float(keys[0])], ident
        return [float(keys[0]), datetime.fromisoformat(keys[1])], ident
    except InvalidQuery:
        raise
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery("cursor", "not a cursor returned by this API") from None


# --- the query ----------------------------------------------------------------------------------


def filters(query: SoundQuery) -> list[Any]:
    out: list[Any] = []
    if query.q is not None and query.q.strip():
        if tsquery_text(query.q) is None:
            raise InvalidQuery("q", "must contain at least one letter or digit")
        out.append(SEARCH_VECTOR.op("@@")(_tsquery(query.q)))
    if query.model:
        out.append(col(Sound.model) == query.model)
    if query.kind:
        out.append(col(Sound.model).in_(MODELS_OF_KIND.get(query.kind, [])))
    if query.category:
        out.append(col(Sound.categories).op("@>")(cast([{"name": query.category.strip().lower()}], JSONB)))
    if query.tags:
        out.append(col(Sound.tags).contains([t.strip().lower() for t in query.tags]))
    if query.min_duration is not None and query.max_duration is not None and query.min_duration > query.max_duration:
        raise InvalidQuery("min_duration", "must not be greater than max_duration")
    if query.min_duration is not None:
        out.append(col(Sound.duration) >= query.min_duration)
    if query.max_duration is not None:
        out.append(col(Sound.duration) <= query.max_duration)
    if query.loopable is not None:
        out.append(col(Sound.loopable).is_(true() if query.loopable else false()))
    if query.quality == "passed":
        out.append(col(Sound.quality_is_good).is_(true()))
    elif query.quality == "accepted_anyway":
        out.append(col(Sound.quality_is_good).is_(false()))
    if query.created_after is not None:
        out.append(col(Sound.created_at) >= query.created_after)
    if query.created_before is not None:
        out.append(col(Sound.created_at) < query.created_before)
    return out


def page(session: Session, query: SoundQuery, scope: Scope) -> tuple[list[Sound], str | None]:
    """One page of sounds and the cursor of the next page (None on the last)."""
    searching = bool(query.q and query.q.strip())
    if query.sort == "relevance" and not searching:
        raise InvalidQuery("sort", "relevance needs a search (q)")
    stmt: Any = select(Sound).where(scope.where(), *filters(query))
    ident = col(Sound.id)
    if query.sort == "relevance":
        assert query.q is not None
        rank = rank_expr(query.q)
        keys: list[Any] = [rank, col(Sound.created_at), ident]
        stmt = select(Sound, rank.label("rank")).where(scope.where(), *filters(query))
        descending = True
    elif query.sort == "duration":
        keys = [col(Sound.duration), ident]
        descending = query.order == "desc"
    else:
        keys = [col(Sound.created_at), ident]
        descending = query.order != "asc"
    if query.cursor:
        values, after = decode_cursor(query.cursor, query.sort)
        bound = tuple_(*[literal(v) for v in values], literal(after))
        stmt = stmt.where(tuple_(*keys) < bound if descending else tuple_(*keys) > bound)
    stmt = stmt.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(query.limit + 1)
    rows: list[Any] = list(session.exec(stmt).all())
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    if query.sort == "relevance":
        sounds = [r[0] for r in rows]
        last_keys = [float(rows[-1][1]), rows[-1][0].created_at] if rows else []
    else:
        sounds = list(rows)
        last_keys = [sounds[-1].duration if query.sort == "duration" else sounds[-1].created_at] if sounds else []
    cursor = encode_cursor(query.sort, last_keys, sounds[-1].id) if more and sounds else None
    return sounds, cursor


def category_counts(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """Every category of the scope's sounds with how many sounds have it, most common first."""
    elements = func.jsonb_array_elements(col(Sound.categories)).table_valued("value").alias("c")
    name, group = elements.c.value.op("->>")("name"), elements.c.value.op("->>")("group")
    stmt = (
        select(name.label("name"), group.label("group"), func.count().label("count"))
        .select_from(Sound)
        .join(elements, true())
        .where(scope.where())
        .group_by(name, group)
        .order_by(func.count().desc(), name)
    )
    return [{"name": n, "group": g, "count": c} for n, g, c in session.exec(stmt).all()]


def visible(sound: Sound, account_id: uuid.UUID | None, is_admin: bool) -> bool:
    """Whether a caller (``account_id`` None: no key) may read the sound by its id."""
    if is_admin or (account_id is not None and sound.account_id == account_id):
        return True
    return sound.visibility in (Visibility.unlisted.value, Visibility.public.value)


def delete_objects(store: ObjectStore, sound: Sound) -> int:
    """Remove every stored object of a sound (audio, converted formats, peaks, spectrogram)."""
    count = store.delete_prefix(sound_prefix(str(sound.id)))
    for key in (sound.audio_key, sound.spectrogram_key):  # in case they live outside the sound's folder
        if store.exists(key):
            store.delete(key)
            count += 1
    return count


def backfill_categories(session: Session, store: ObjectStore | None, everything: bool = False, batch: int = 200) -> int:
    """Categorize sounds made before categories existed (those with none; ``everything``: all of
    them again), from their prompt and, when ``store`` is given and holds it, their audio.
    Commits every ``batch`` sounds; returns how many were categorized."""
    from shared.domain.categories import categorize

    done = 0
    last: uuid.UUID | None = None
    while True:
        stmt = select(Sound).where(col(Sound.deleted_at).is_(None)).order_by(col(Sound.id)).limit(batch)
        if not everything:
            stmt = stmt.where(func.jsonb_array_length(col(Sound.categories)) == 0)
        if last is not None:
            stmt = stmt.where(col(Sound.id) > last)
        sounds = list(session.exec(stmt).all())
        if not sounds:
            return done
        for sound in sounds:
            wav = None
            if store is not None:
                try:
                    wav = store.get(sound.audio_key)
                except (KeyError, OSError):  # ObjectNotFound is a KeyError: categories from the prompt only
                    wav = None
            sound.categories = categorize(kind_of(sound.model), sound.prompt, sound.loopable, wav)
            session.add(sound)
            done += 1
        session.commit()
        last = sounds[-1].id
