"""The FastAPI application: thin routers, one per resource."""

from __future__ import annotations

from fastapi import FastAPI

from api import problems
from api.routes import generations, health, jobs, models, sounds
from shared.logging import configure_logging

DESCRIPTION = """Sound Box turns text into music (MusicGen), sound effects (AudioGen), alternative
music (MAGNeT) and speech (Piper). Submit with `POST /v1/generations`, follow the job at its
`Location`, then fetch the audio and spectrogram. Errors are RFC 9457 problem+json."""


def create_app() -> FastAPI:
    configure_logging("api")
    app = FastAPI(title="Sound Box", version="0.1.0", description=DESCRIPTION)
    problems.install(app)
    for module in (generations, jobs, sounds, models, health):
        app.include_router(module.router)
    return app


app = create_app()
