"""Database rows to API bodies, with absolute URLs built from the request's base URL."""

from __future__ import annotations

import uuid

from fastapi import Request

from shared.domain import jobview
from shared.domain.jobview import quality_of, sound_paths
from shared.domain.library import kind_of
from shared.domain.models import Job, Sound
from shared.domain.schemas import CategoryOut, JobOut, SoundOut


def job_out(request: Request, job: Job, sound: Sound | None) -> JobOut:
    return jobview.job_out(job, sound, base_url=str(request.base_url))


def sound_out(request: Request, sound: Sound, viewer: uuid.UUID | None = None) -> SoundOut:
    """``viewer``: the caller's account id, when known (fills ``owned``)."""
    base = str(request.base_url).rstrip("/")
    audio_url, spectrogram_url = (base + p for p in sound_paths(sound.id))
    return SoundOut(
        id=sound.id,
        job_id=sound.job_id,
        model=sound.model,
        kind=kind_of(sound.model),
        prompt=sound.prompt,
        title=sound.title,
        tags=list(sound.tags or []),
        visibility=sound.visibility,
        categories=[CategoryOut.model_validate(c) for c in sound.categories or []],
        duration=sound.duration,
        sample_rate=sound.sample_rate,
        channels=sound.channels,
        loopable=sound.loopable,
        quality=quality_of(sound),
        audio_url=audio_url,
        spectrogram_url=spectrogram_url,
        peaks_url=f"{base}/v1/sounds/{sound.id}/peaks",
        created_at=sound.created_at,
        owned=None if viewer is None else sound.account_id == viewer,
    )
