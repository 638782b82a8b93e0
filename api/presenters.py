"""Database rows to API bodies (URLs are absolute, built from the request)."""

from __future__ import annotations

from fastapi import Request

from shared import jobview
from shared.jobview import quality_of
from shared.models import Job, Sound
from shared.schemas import JobOut, SoundOut


def _urls(request: Request, sound: Sound) -> tuple[str, str]:
    return (str(request.url_for("get_sound_audio", sound_id=sound.id)),
            str(request.url_for("get_sound_spectrogram", sound_id=sound.id)))


def job_out(request: Request, job: Job, sound: Sound | None) -> JobOut:
    return jobview.job_out(job, sound, _urls(request, sound) if sound is not None else None)


def sound_out(request: Request, sound: Sound) -> SoundOut:
    audio_url, spectrogram_url = _urls(request, sound)
    return SoundOut(id=sound.id, job_id=sound.job_id, model=sound.model, prompt=sound.prompt,
                    duration=sound.duration, sample_rate=sound.sample_rate, channels=sound.channels,
                    loopable=sound.loopable, quality=quality_of(sound), audio_url=audio_url,
                    spectrogram_url=spectrogram_url, created_at=sound.created_at)
