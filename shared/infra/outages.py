"""The exceptions that mean a dependency is away (not that a request or a job is wrong): the API
answers them with 503 and Retry-After, the worker leaves the job to its lease instead of failing it."""

from __future__ import annotations


def database_errors() -> tuple[type[Exception], ...]:
    import psycopg
    import sqlalchemy.exc as sa

    return (
        sa.OperationalError,
        sa.InterfaceError,
        sa.DisconnectionError,
        sa.TimeoutError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    )


def redis_errors() -> tuple[type[Exception], ...]:
    import redis.exceptions as r

    return (r.ConnectionError, r.TimeoutError)


def is_outage(exc: BaseException) -> bool:
    """PostgreSQL or Redis unreachable (or a connection to it lost)."""
    return isinstance(exc, database_errors() + redis_errors() + (ConnectionError,))
