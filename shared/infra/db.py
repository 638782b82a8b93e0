"""Database engines and sessions (SQLModel on PostgreSQL through psycopg 3): synchronous for the
workers and most routes, asyncio for the API's hot routes (submit, job reads, auth)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session, create_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.settings import get_settings


@lru_cache
def engine_for(
    url: str, pool_size: int = 10, max_overflow: int = 5, pool_timeout: float = 3.0, connect_timeout: int = 3
) -> Engine:
    """A bounded pool that fails fast: waiting longer than ``pool_timeout`` for a connection raises
    (the API answers 503), and an unreachable server is noticed within ``connect_timeout``."""
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_args={"connect_timeout": connect_timeout},
    )


def get_engine() -> Engine:
    s = get_settings()
    return engine_for(s.database_url, s.db_pool_size, s.db_max_overflow, s.db_pool_timeout, s.db_connect_timeout)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@lru_cache
def async_engine_for(
    url: str, pool_size: int = 10, max_overflow: int = 0, pool_timeout: float = 3.0, connect_timeout: int = 3
) -> AsyncEngine:
    """The API's asyncio engine (psycopg's async driver): as bounded and fail-fast as ``engine_for``.
    No pre-ping (a round trip per checkout on the hot path): a connection found dead raises (the
    API answers 503) and SQLAlchemy discards the pool's older connections with it."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"connect_timeout": connect_timeout},
    )


def get_async_engine() -> AsyncEngine:
    s = get_settings()
    return async_engine_for(
        s.database_url, s.db_async_pool_size, s.db_async_max_overflow, s.db_pool_timeout, s.db_connect_timeout
    )


@lru_cache
def _async_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def async_session() -> AsyncSession:
    """A new asyncio session on the API's async engine (it takes a connection on first use)."""
    return _async_sessions(get_async_engine())()
