"""Database engines and sessions (SQLModel on PostgreSQL through psycopg 3), synchronous: the
workers, the CLI and most routes. The API's hot routes (submit, API keys, reading a job) use the
async pool of shared/infra/aiodb.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine
from sqlmodel import Session, create_engine

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
