"""Database rows to API bodies (URLs are absolute, built from the request)."""

from __future__ import annotations

from fastapi import Request

from shared.models import Job, Sound
from shared.schemas import JobOut, QualityOut, ResultOut, SoundOut


def quality_of(sound: Sound) -> QualityOut:
    return QualityOut(score=sound.quality_score, issues=sound.quality_issues, is_good=sound.quality_is_good)


def _urls(request: Request, sound: Sound) -> tuple[str, str]:
    return (str(request.url_for("get_sound_audio", sound_id=sound.id)),
            str(request.url_for("get_sound_spectrogram", sound_id=sound.id)))


def job_out(request: Request, job: Job, sound: Sound | None) -> JobOut:
    result = None
    if sound is not None:
        audio_url, spectrogram_url = _urls(request, sound)
        result = ResultOut(sound_id=sound.id, audio_url=audio_url, spectrogram_url=spectrogram_url,
                           duration=sound.duration, sample_rate=sound.sample_rate, quality=quality_of(sound))
    return JobOut(id=job.id, status=job.status, model=job.model, params=job.params, priority=job.priority,
                  progress=job.progress, attempts=job.attempts, error=job.error, created_at=job.created_at,
                  started_at=job.started_at, finished_at=job.finished_at, result=result)


def sound_out(request: Request, sound: Sound) -> SoundOut:
    audio_url, spectrogram_url = _urls(request, sound)
    return SoundOut(id=sound.id, job_id=sound.job_id, model=sound.model, prompt=sound.prompt,
                    duration=sound.duration, sample_rate=sound.sample_rate, channels=sound.channels,
                    loopable=sound.loopable, quality=quality_of(sound), audio_url=audio_url,
                    spectrogram_url=spectrogram_url, created_at=sound.created_at)
