"""Shared FastAPI dependencies: settings, database session, object store, Redis, catalog."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

import redis
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
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def get_redis(settings: Annotated[Settings, Depends(get_settings)]) -> redis.Redis:
    return _redis(settings.redis_url)


def get_object_store(settings: Annotated[Settings, Depends(get_settings)]) -> ObjectStore:
    return get_store(settings)


def get_models(settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, ModelSpec]:
    return get_catalog(settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
StoreDep = Annotated[ObjectStore, Depends(get_object_store)]
CatalogDep = Annotated[dict[str, ModelSpec], Depends(get_models)]
