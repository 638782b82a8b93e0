"""Shared FastAPI dependencies: settings, database session, object store, Redis, catalog."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

import redis
import redis.asyncio as aioredis
from fastapi import Depends
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from shared.domain.catalog import ModelSpec, get_catalog
from shared.infra.db import get_engine
from shared.infra.storage import ObjectStore, get_store
from shared.settings import Settings, get_settings


def get_session() -> Iterator[Session]:
    session = Session(get_engine(), expire_on_commit=False)
    try:
        yield session
    finally:
        try:
            session.close()
        except SQLAlchemyError:  # the connection died after the answer was sent: SQLAlchemy discards it
            pass


@lru_cache
def _async_redis(url: str) -> aioredis.Redis:
    # bounded: at most this many connections per process; a caller beyond waits up to 2 s for one
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=2, socket_timeout=5, socket_connect_timeout=2
    )
    return aioredis.Redis(connection_pool=pool)


async def settings_dep() -> Settings:
    """``get_settings`` as an async dependency: FastAPI runs a plain ``def`` dependency in its
    thread pool, a hop per request the hot routes cannot afford."""
    return get_settings()


# The async dependencies below read the settings themselves instead of depending on
# ``settings_dep``: FastAPI solves a sub-dependency (cached or not) with a call of its own per request.


async def get_async_redis() -> aioredis.Redis:
    return _async_redis(get_settings().redis_url)


@lru_cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def get_redis(settings: Annotated[Settings, Depends(get_settings)]) -> redis.Redis:
    return _redis(settings.redis_url)


def get_object_store(settings: Annotated[Settings, Depends(get_settings)]) -> ObjectStore:
    return get_store(settings)


_catalogs: dict[int, tuple[Settings, dict[str, ModelSpec]]] = {}


async def get_models() -> dict[str, ModelSpec]:
    settings = get_settings()
    held = _catalogs.get(id(settings))
    if held is None or held[0] is not settings:  # built once per settings object (a process has one)
        held = _catalogs[id(settings)] = (settings, get_catalog(settings))
    return held[1]


SettingsDep = Annotated[Settings, Depends(settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
AsyncRedisDep = Annotated[aioredis.Redis, Depends(get_async_redis)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
StoreDep = Annotated[ObjectStore, Depends(get_object_store)]
CatalogDep = Annotated[dict[str, ModelSpec], Depends(get_models)]
