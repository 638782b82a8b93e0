"""A job as clients see it (the ``JobOut`` body), built without a request: the API's presenters,
job events and webhook bodies all use it, so every channel shows the same object."""

from __future__ import annotations

from shared.domain.models import Job, Sound
from shared.domain.schemas import AttemptOut, JobOut, QualityOut, ResultOut

ACCEPTED_ANYWAY = (
    "no generation attempt passed the quality check; this is the best-scoring one, "
    "kept anyway (see the job's attempt_history)"
)


def quality_of(sound: Sound) -> QualityOut:
    """A sound's quality report. A stored sound that is not good was kept although no attempt
    passed: the worker keeps the first good attempt, and the best one only when none is."""
    return QualityOut(
        score=sound.quality_score,
        issues=sound.quality_issues,
        is_good=sound.quality_is_good,
        accepted_anyway=not sound.quality_is_good,
        note=None if sound.quality_is_good else ACCEPTED_ANYWAY,
    )


def attempt_history(job: Job) -> list[AttemptOut]:
    """The job's attempt log (every attempt's seed, time and quality report), oldest first."""
    out = []
    for entry in job.attempt_log or []:
        if isinstance(entry, dict) and "attempt" in entry and "score" in entry:
            out.append(AttemptOut.model_validate({"is_good": False, **entry}))
    return out


def sound_paths(sound_id) -> tuple[str, str]:
    """The audio and spectrogram paths of a sound (the routes of api/routes/sounds.py)."""
    return f"/v1/sounds/{sound_id}/audio", f"/v1/sounds/{sound_id}/spectrogram.png"


def job_out(job: Job, sound: Sound | None, base_url: str = "") -> JobOut:
    """Result URLs are ``base_url`` + the routes' paths (relative when ``base_url`` is empty)."""
    result = None
    if sound is not None:
        audio_url, spectrogram_url = (base_url.rstrip("/") + p for p in sound_paths(sound.id))
        result = ResultOut(
            sound_id=sound.id,
            audio_url=audio_url,
            spectrogram_url=spectrogram_url,
            duration=sound.duration,
            sample_rate=sound.sample_rate,
            quality=quality_of(sound),
            deleted_at=sound.deleted_at,
        )
    return JobOut(
        id=job.id,
        status=job.status,
        model=job.model,
        params=job.params,
        priority=job.priority,
        progress=job.progress,
        attempts=job.attempts,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=result,
        webhook_url=job.webhook_url,
        webhook_events=list(job.webhook_events or []),
        attempt_history=attempt_history(job),
        warnings=list(job.warnings or []),
        model_choice=job.model_choice,
    )
