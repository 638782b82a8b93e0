"""How the API holds under load and faults.

- :class:`Admission` bounds the requests a process works on at once (``api_max_in_flight``)
  with a short queue (``api_max_queued``, each waiting at most ``api_queue_wait`` seconds);
  beyond that a request gets 503 with ``Retry-After`` at once instead of piling up in the
  database pool and the thread pool until everything times out. Health routes are exempt: the
  liveness probe answers whatever the load.
- Bodies over ``max_body_bytes`` get 413 (:class:`BodyLimit`): from ``Content-Length`` before
  anything is read, or as soon as a streamed body crosses the limit.
- :func:`install_outage_handlers` turns an unreachable PostgreSQL or Redis into 503 with
  ``Retry-After`` and a problem body naming which (``"unavailable": "database"``), on every route.
- the Allow header of OPTIONS and 405 answers lives with the other error answers (api/problems.py: allowed_methods).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem
from shared.infra.outages import database_errors, redis_errors

log = structlog.get_logger()

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
ADMISSION_RELEASE = "admission_release"  # key in scope["state"]: frees the caller's slot early


def _problem_bytes(status: int, title: str, detail: str, path: str, **extra: Any) -> bytes:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": path, **extra}
    return json.dumps(body).encode()


async def _send_problem(
    send: Send, status: int, title: str, detail: str, path: str, headers: dict[str, str] | None = None, **extra: Any
) -> None:
    body = _problem_bytes(status, title, detail, path, **extra)
    raw = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Admission:
    """A bounded number of requests in flight per process, a short bounded queue, 503 beyond."""

    def __init__(
        self, app: ASGIApp, max_in_flight: int, max_queued: int, queue_wait: float, retry_after: int = 1
    ) -> None:
        self.app, self.max_in_flight, self.max_queued = app, max_in_flight, max_queued
        self.queue_wait, self.retry_after = queue_wait, retry_after
        self.in_flight = 0
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or self.max_in_flight <= 0:
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        slots = self._slots
        if slots.locked():
            if self.waiting >= self.max_queued:
                await self._refuse(scope, send, "queue full")
                return
            self.waiting += 1
            try:
                async with asyncio.timeout(self.queue_wait):  # no task per waiter, unlike wait_for
                    await slots.acquire()
            except TimeoutError:
                await self._refuse(scope, send, "waited too long")
                return
            finally:
                self.waiting -= 1
        else:
            await slots.acquire()
        self.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1
                slots.release()

        scope.setdefault("state", {})[ADMISSION_RELEASE] = release

        async def send_and_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()  # streaming bodies (audio, events) do not hold a slot
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            release()

    async def _refuse(self, scope: Scope, send: Send, why: str) -> None:
        from api import metrics

        metrics.SHED.inc()
        await _send_problem(
            send,
            503,
            "Service Unavailable",
            f"the API is at capacity ({self.max_in_flight} requests in progress); try again shortly",
            scope["path"],
            {"Retry-After": str(self.retry_after)},
            unavailable="capacity",
        )


def release_admission(request: Request) -> None:
    """Give back this request's admission slot before a long wait that holds no resources
    (``Prefer: wait``)."""
    release = request.scope.get("state", {}).get(ADMISSION_RELEASE)
    if release is not None:
        release()


class Liveness:
    """``GET /healthz`` answered outside everything else (no routing, no middleware, no pool), so
    the liveness probe stays cheap and quick however busy the process is. The route in
    api/routes/health.py documents it (and answers it when this layer is absent)."""

    BODY = b'{"status":"ok"}'
    HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 200, "headers": self.HEADERS})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self.BODY})
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Request bodies of at most ``limit`` bytes (0: no limit). A ``Content-Length`` over it gets
    413 problem+json at once, with nothing of the body read. Any other body is counted as it is
    read, and the read that crosses the limit raises a 413 the app's error handlers answer
    (FastAPI's own ``max_body_size`` does the same with three more layers per request)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is None or (declared.isdigit() and int(declared) <= self.limit):
            await self.app(scope, self._counted(receive), send)
        else:
            await _send_problem(send, 413, "Content Too Large", self._detail(), scope["path"], limit=self.limit)

    def _detail(self) -> str:
        return f"the request body is larger than {self.limit} bytes"

    def _counted(self, receive: Receive) -> Receive:
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > self.limit:
                raise HTTPException(413, self._detail())
            return message

        return counted


# --- outages ---------------------------------------------------------------------------------------


def outage_response(request: Request, which: str, exc: BaseException) -> JSONResponse:
    from api import metrics

    busy = type(exc).__name__ == "TimeoutError" and which == "database"  # the pool, not the server
    log.warning(
        "dependency unavailable", dependency=which, error=f"{type(exc).__name__}: {exc}"[:300], path=request.url.path
    )
    metrics.OUTAGES.labels(which).inc()
    detail = f"the {which} is {'busy' if busy else 'unavailable'}; try again shortly"
    return problem(
        request,
        503,
        detail,
        title="Service Unavailable",
        headers={"Retry-After": "1" if busy else "5"},
        unavailable=which,
    )


def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value PostgreSQL cannot hold (a NUL character in a query parameter, an out-of-range
    number) is the request's fault: 422, never a 500."""
    log.info("value refused by the database", error=f"{type(exc).__name__}: {exc}"[:300], path=request.url.path)
    return problem(
        request,
        422,
        "a value in the request cannot be stored or searched for (for example a NUL character)",
        title="Validation failed",
    )


def install_outage_handlers(app: FastAPI) -> None:
    import psycopg
    import sqlalchemy.exc as sa

    for data_error in (sa.DataError, psycopg.DataError):
        app.add_exception_handler(data_error, _data_error)
    for exc_class in database_errors():
        app.add_exception_handler(exc_class, lambda request, exc: outage_response(request, "database", exc))
    for exc_class in redis_errors():
        app.add_exception_handler(exc_class, lambda request, exc: outage_response(request, "redis", exc))


# --- what every route may answer, for the OpenAPI document ------------------------------------------


def _problem_doc(description: str) -> dict[str, Any]:
    from shared.domain.schemas import Problem

    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def document_not_found(router: APIRouter) -> None:
    """Every operation with a path parameter can answer 404 (no such id, or not the caller's):
    say so in the OpenAPI document."""
    from fastapi.routing import APIRoute

    for route in router.routes:
        if isinstance(route, APIRoute) and "{" in route.path_format and 404 not in route.responses:
            route.responses[404] = _problem_doc("No such resource, or not the caller's")


def problem_responses(*, admin: bool = False, body: bool = True) -> dict[int | str, dict[str, Any]]:
    """The problem+json answers every authenticated route can give, documented on each operation."""
    doc = _problem_doc

    out: dict[int | str, dict[str, Any]] = {
        401: doc("No API key, or one that is not valid (WWW-Authenticate: Bearer)"),
        422: doc("A parameter or body field is invalid; `errors` names each"),
        429: doc("Rate limit or tier limit reached; see Retry-After and RateLimit-* headers"),
        503: doc(
            "At capacity (`unavailable`: capacity), or PostgreSQL / Redis unreachable (`unavailable`: "
            "database / redis); see Retry-After"
        ),
    }
    if admin:
        out[403] = doc("The route is for admin keys")
    if body:
        out[413] = doc("The request body is larger than SOUNDBOX_MAX_BODY_BYTES")
    return out
