"""The FastAPI application: thin routers, one per resource, each behind authentication and a
rate-limit class; one middleware for request ids, rate-limit headers and metrics."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics, problems
from api.auth import current_principal, rate_limit, require_admin
from api.deps import SettingsDep
from api.resilience import (
    Admission,
    BodyLimit,
    Liveness,
    document_not_found,
    install_outage_handlers,
    problem_responses,
)
from api.routes import (
    admin,
    events,
    generations,
    health,
    jobs,
    library,
    models,
    prompts,
    sounds,
    speech,
    voices,
    webhooks,
)
from shared.infra import aiodb
from shared.infra.logging import configure_logging
from shared.settings import get_settings

DESCRIPTION = """Sound Box turns text into music (MusicGen), sound effects (AudioGen), alternative
music (MAGNeT) and speech (Piper). Submit with `POST /v1/generations`, follow the job at its
`Location` (or follow its Server-Sent Events, wait with `Prefer: wait=N`, or get signed webhooks),
then fetch the audio and spectrogram. `POST /v1/audio/speech` (OpenAI-compatible)
streams speech at once, without the queue. Authenticate with `Authorization: Bearer <api key>`.
Errors are RFC 9457 problem+json."""

log = structlog.get_logger()
STUDIO_DIR = Path(__file__).parent / "studio"  # plain HTML, CSS and ES modules: no build step

# (router, rate-limit class, admin only); None: the route charges the caller's bucket itself
# (POST /v1/generations, in the script that admits the job)
ROUTES: list[tuple[APIRouter, str | None, bool]] = [
    (generations.router, None, False),
    (jobs.router, "read", False),
    (events.router, "read", False),
    (webhooks.router, "read", False),
    (prompts.router, "read", False),
    (models.router, "read", False),
    (speech.router, "speech", False),
    (voices.router, "read", False),
    (admin.router, "admin", True),
]
# Routers that may answer without a key (public and unlisted sounds, the public library): each route
# checks the caller itself (api/auth.py: OptionalPrincipal, SignedIn).
OPEN_ROUTES = [
    (sounds.router, "read"),
    (library.router, "read"),
]


def _metrics_route(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request, settings: SettingsDep) -> Response:
        """Prometheus text format, for an admin key or SOUNDBOX_METRICS_TOKEN."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not (settings.metrics_token and token == settings.metrics_token):
            require_admin(await current_principal(request))
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


class RequestContext:
    """Request ids (``X-Request-ID``), rate-limit headers, metrics and the request log, as plain
    ASGI (``BaseHTTPMiddleware`` costs a task and a body stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        request_id = request_id or uuid.uuid4().hex
        started = time.perf_counter()
        status, elapsed = 500, 0.0

        async def send_with_context(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status, elapsed = message["status"], time.perf_counter() - started
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                raw.append((b"x-request-id", request_id.encode("latin-1")))
                for name, value in scope.get("state", {}).get("rate_limit_headers", {}).items():
                    if name.lower().encode() not in present:
                        raw.append((name.encode(), value.encode()))
                message = {**message, "headers": raw}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_context)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                method = scope["method"]
                elapsed = elapsed or time.perf_counter() - started
                metrics.REQUESTS.labels(method, template, str(status)).inc()
                metrics.LATENCY.labels(method, template).observe(elapsed)
                if template != "/metrics" and not template.startswith("/healthz"):
                    log.info("request", method=method, path=scope["path"], status=status, ms=round(elapsed * 1000, 1))


async def _sweep_limits(force: bool) -> None:
    from shared.domain import events, limits

    settings = get_settings()
    try:
        report = await asyncio.to_thread(
            limits.sweep_if_due, events.redis_client(), settings.limits_sweep_seconds, force
        )
    except Exception as exc:  # PostgreSQL or Redis away: the next sweep heals
        log.warning("limit counters not swept", error=f"{type(exc).__name__}: {exc}"[:300])
        return
    if report is not None and (report.added or report.removed):
        log.info("limit counters repaired", added=report.added, removed=report.removed)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Rebuild the Redis limit counters from PostgreSQL before serving (bounded: a slow database
    does not stop the start), then every SOUNDBOX_LIMITS_SWEEP_SECONDS (shared/domain/limits.py)."""
    try:
        await asyncio.wait_for(_sweep_limits(force=True), 15)
    except TimeoutError:
        log.warning("limit counters not swept at start: too slow")
    gc.collect()
    gc.freeze()  # what start-up made lives for good: the collector need not walk it again

    async def periodic() -> None:
        while True:
            await asyncio.sleep(get_settings().limits_sweep_seconds)
            await _sweep_limits(force=False)

    task = asyncio.create_task(periodic())
    try:
        yield
    finally:
        task.cancel()
        await aiodb.close_pools()


class _App(FastAPI):
    def build_middleware_stack(self):  # liveness and an oversize body are answered outside everything else
        return Liveness(BodyLimit(super().build_middleware_stack(), get_settings().max_body_bytes))


def _studio(app: FastAPI) -> None:
    """The web studio: its page at ``/``, its files under ``/studio/`` (a mount of its own, so it
    never shadows an API path: other methods there still get 405 with the path's own Allow)."""

    @app.get("/", include_in_schema=False)
    def studio_page() -> FileResponse:
        return FileResponse(STUDIO_DIR / "index.html", media_type="text/html")

    app.mount("/studio", StaticFiles(directory=STUDIO_DIR), name="studio")


def create_app() -> FastAPI:
    configure_logging("api")
    app = _App(
        title="Sound Box",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    problems.install(app)
    install_outage_handlers(app)  # database and Redis errors: 503 naming which
    for router, route_class, admin_only in ROUTES:
        document_not_found(router)
        deps = [Depends(current_principal)] + ([rate_limit(route_class)] if route_class else [])
        if admin_only:
            deps.append(Depends(require_admin))
        app.include_router(router, dependencies=deps, responses=problem_responses(admin=admin_only))
    for router, route_class in OPEN_ROUTES:
        document_not_found(router)
        app.include_router(
            router, dependencies=[rate_limit(route_class, optional=True)], responses=problem_responses(admin=False)
        )
    app.include_router(health.router)
    _metrics_route(app)
    _studio(app)
    app.add_middleware(RequestContext)
    settings = get_settings()
    app.add_middleware(
        Admission,
        max_in_flight=settings.api_max_in_flight,
        max_queued=settings.api_max_queued,
        queue_wait=settings.api_queue_wait,
    )
    origins = settings.cors_origins
    if origins:  # browser frontends on other origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "Location",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "X-Request-ID",
                "Content-Range",
            ],
        )
    return app


app = create_app()
