"""RFC 9457 problem+json responses for every error the API returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from shared.domain import idempotency
from shared.domain.errors import (
    IdempotencyConflict,
    InvalidField,
    JobFinished,
    LimitReached,
    QueueUnavailable,
    RateLimited,
)
from shared.infra.storage import StoreUnavailable

MEDIA_TYPE = "application/problem+json"
QUEUE_RETRY_AFTER = 5  # seconds, when the broker refused a job
STORE_RETRY_AFTER_SECONDS = 5


class ProblemException(Exception):
    def __init__(
        self, status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
    ):
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra
        self.title = title or HTTPStatus(status).phrase


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (UnicodeEncodeError, ValueError):  # a lone surrogate echoed from the request: escape it
            import json

            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def problem(
    request: Request,
    status: int,
    detail: str | None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return ProblemResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def field_error(field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 naming one body field, shaped like pydantic's own errors."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}])


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for e in exc.errors():
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            field, msg = "body", f"request body is not valid JSON: {e.get('ctx', {}).get('error', e.get('msg'))}"
        else:
            field, msg = _field_name(loc), e.get("msg", "invalid value")
        errors.append(
            {"field": field, "location": str(loc[0]) if loc else "body", "message": msg, "type": e.get("type")}
        )
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(request, 422, detail, title="Validation failed", errors=errors)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation(request, exc)

    @app.exception_handler(ProblemException)
    async def _on_problem(request: Request, exc: ProblemException) -> JSONResponse:
        return problem(request, exc.status, exc.detail, exc.title, exc.headers, **exc.extra)

    # The domain's refusals (shared/domain/errors.py), each as its HTTP answer.
    @app.exception_handler(InvalidField)
    async def _on_invalid_field(request: Request, exc: InvalidField) -> JSONResponse:
        return _validation(request, field_error(exc.field, exc.message, exc.value))

    @app.exception_handler(LimitReached)
    async def _on_limit(request: Request, exc: LimitReached) -> JSONResponse:
        return problem(
            request,
            503 if exc.capacity else 429,
            exc.detail,
            headers={"Retry-After": str(exc.retry_after)},
            limit=exc.limit,
        )

    @app.exception_handler(RateLimited)
    async def _on_rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        headers = {**exc.headers, "Retry-After": str(exc.retry_after)}
        return problem(request, 429, exc.detail, title="Too Many Requests", headers=headers)

    @app.exception_handler(QueueUnavailable)
    async def _on_queue_down(request: Request, exc: QueueUnavailable) -> JSONResponse:
        return problem(request, 503, str(exc), headers={"Retry-After": str(QUEUE_RETRY_AFTER)})

    @app.exception_handler(IdempotencyConflict)
    async def _on_key_conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return problem(request, 409, exc.detail, header=idempotency.NAME)

    @app.exception_handler(JobFinished)
    async def _on_finished(request: Request, exc: JobFinished) -> JSONResponse:
        return problem(request, 409, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: HTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Allow lists every method of the path, not one route's
            allow = ", ".join(allowed_methods(request.app, request.scope))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers = {**(headers or {}), "Allow": allow}
        return problem(request, exc.status_code, str(exc.detail) if exc.detail else None, headers=headers)

    @app.exception_handler(StoreUnavailable)
    async def _on_store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        import structlog

        structlog.get_logger().warning("object store unavailable", path=request.url.path, error=str(exc))
        return problem(
            request,
            503,
            f"the object store is unavailable; retry in {STORE_RETRY_AFTER_SECONDS} s",
            title="Storage unavailable",
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger().exception("unhandled error", path=request.url.path)
        return problem(request, 500, "internal error; it has been logged")


# --- Allow -----------------------------------------------------------------------------------------

CANDIDATE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route of ``app`` answers at this path, plus OPTIONS: each candidate
    method is matched against the router as a request with that method would be."""
    routes = getattr(app, "routes", [])
    allowed = []
    for method in CANDIDATE_METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return [*allowed, "OPTIONS"]
