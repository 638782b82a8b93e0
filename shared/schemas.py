"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean_text(v: Any) -> Any:
    """Strip control characters (newlines and tabs survive) and surrounding white space."""
    return _CONTROL.sub("", v).strip() if isinstance(v, str) else v


CleanText = Annotated[str, BeforeValidator(_clean_text)]
PROMPT_MAX = 500
SPEECH_MAX = 5000
DEFAULT_DURATION = 8.0


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal["music", "audio", "magnet", "voice"] = Field(
        description="music (MusicGen), audio (AudioGen sound effects), magnet (MAGNeT), voice (Piper TTS)")
    prompt: CleanText = Field(
        min_length=3, max_length=SPEECH_MAX,
        description=f"What to generate, 3-{PROMPT_MAX} characters; for voice the text to speak, up to {SPEECH_MAX}.")
    duration: float | None = Field(
        None, gt=0, description=f"Seconds (default {DEFAULT_DURATION:g}, capped at the model's maximum); ignored for voice.")
    loopable: bool = Field(False, description="Crossfade the end into the start so the clip loops seamlessly.")
    priority: int = Field(5, ge=0, le=9, description="0-9, higher runs first.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Random seed; random when omitted.")
    voice: str | None = Field(None, min_length=1, max_length=128, description="Piper voice id (voice model only).")


class QualityOut(BaseModel):
    score: float
    issues: list[dict[str, Any]]
    is_good: bool


class ResultOut(BaseModel):
    sound_id: uuid.UUID
    audio_url: str
    spectrogram_url: str
    duration: float
    sample_rate: int
    quality: QualityOut


class JobOut(BaseModel):
    id: uuid.UUID
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    model: str
    params: dict[str, Any]
    priority: int
    progress: float
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: ResultOut | None = None


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page; null on the last page.")


class SoundOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    model: str
    prompt: str
    duration: float
    sample_rate: int
    channels: int
    loopable: bool
    quality: QualityOut
    audio_url: str
    spectrogram_url: str
    created_at: datetime


class ModelOut(BaseModel):
    id: str
    kind: str
    family: str
    checkpoint: str
    queue: str
    sample_rate: int
    min_duration: float
    max_duration: float
    state: Literal["loaded", "available", "missing"]
    description: str


class ModelList(BaseModel):
    catalog: Literal["default", "tiny"]
    models: list[ModelOut]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
