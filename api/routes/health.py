"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import RedisDep, StoreDep
from shared.infra.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up. Touches neither the database nor a pool, and is never refused for load."""
    return {"status": "ok"}


def _database_ok() -> None:
    with Session(get_engine()) as session:
        session.execute(text("SELECT 1"))


@router.get(
    "/readyz",
    responses={503: {"description": "PostgreSQL, Redis or the object store is unreachable (named in checks)"}},
)
async def readyz(redis: RedisDep, store: StoreDep) -> JSONResponse:
    """PostgreSQL, Redis and the object store are reachable (503 otherwise, naming which is not)."""
    checks = {}
    try:
        await run_in_threadpool(_database_ok)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await run_in_threadpool(redis.ping)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    try:
        await run_in_threadpool(store.check)
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": "5"},
    )
