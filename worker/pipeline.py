"""One job from claim to stored sound: generate, check quality (regenerate while broken),
post-process each clip, store, record. Steps after generation work per item, so a batched
``generate()`` can feed them unchanged.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from shared.audio.io import encode_wav
from shared.audio.loop import loop_crossfade_seconds, make_loopable
from shared.audio.loudness import normalize_loudness
from shared.audio.quality import QualityReport, analyze, thresholds_for
from shared.audio.spectrogram import render_spectrogram_png
from shared.domain import events, jobs
from shared.domain.catalog import ModelSpec
from shared.domain.categories import categorize
from shared.domain.events import EventType
from shared.domain.models import Job, JobStatus, Sound
from shared.domain.params import JobParams
from shared.infra.storage import ObjectStore, sound_keys
from shared.settings import Settings
from worker import metrics
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ModelUnavailable
from worker.memory import GenerationOutOfMemory, InsufficientMemory, Lease, MemoryManager

log = structlog.get_logger()
GENERATION_SHARE = 0.9  # progress 0..0.9 is generation, the rest post-processing


class JobCanceled(Exception):
    pass


class LeaseLost(Exception):
    pass


class JobMonitor:
    """Renews the job's lease and writes progress from a background thread; tells the
    generation loop (through ``check``) when the job was canceled or taken away."""

    def __init__(self, job_id: uuid.UUID, worker: str, lease_seconds: int, interval: float = 0.5):
        self.job_id, self.worker, self.lease = job_id, worker, lease_seconds
        self.interval = interval
        self.progress = 0.0
        self.canceled = False
        self.lost = False
        self._written = -1.0
        self._told = 0.0  # progress last sent as a job.progress event
        self._throttle = events.Throttle()
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}", daemon=True)

    def __enter__(self) -> JobMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tell_progress()
            due = time.monotonic() - self._renewed > self.lease / 3
            if self.progress == self._written and not due:
                continue
            try:
                canceled = jobs.heartbeat(self.job_id, self.worker, self.lease, self.progress)
            except Exception as exc:  # database hiccup: try again next tick, the lease has slack
                log.warning("heartbeat failed", job_id=str(self.job_id), error=str(exc))
                continue
            self._written, self._renewed = self.progress, time.monotonic()
            if canceled is None:
                self.lost = True
            elif canceled:
                self.canceled = True

    def _tell_progress(self) -> None:
        """A job.progress event for progress stored since the last one, at most one a second."""
        if self._written > self._told and self._throttle.ready():
            self._told = self._written
            events.emit(self.job_id, EventType.progress, only_status=JobStatus.running)

    def set_progress(self, value: float) -> None:
        self.progress = max(self.progress, min(1.0, value))
        self.check()

    def check(self) -> None:
        if self.canceled:
            raise JobCanceled("canceled by request")
        if self.lost:
            raise LeaseLost("the job's lease was taken over")


@dataclass
class Candidate:
    audio: GeneratedAudio
    report: QualityReport
    attempt: int


def generate_until_good(
    engine: Engine | Lease, spec: ModelSpec, params: JobParams, settings: Settings, monitor: JobMonitor
) -> tuple[Candidate, list[dict[str, Any]]]:
    """Generate, analyze, and regenerate with the next seed (seed + 1 per attempt) while the
    result is not good, for at most ``max_attempts``. Returns the first good attempt, or the
    best-scoring one when none passes, and every attempt's log entry."""
    duration = params.duration or 0.0
    if params.loopable:
        duration += loop_crossfade_seconds(duration, settings.loop_crossfade_seconds)
    best: Candidate | None = None
    log_entries: list[dict[str, Any]] = []
    thresholds = thresholds_for(spec.kind, settings.quality_thresholds)
    for attempt in range(settings.max_attempts):
        seed = (params.seed + attempt) % 2**31
        request = GenerationRequest(
            prompt=params.prompt, duration=duration, seed=seed, voice=params.voice, controls=params.controls()
        )
        # Each attempt moves progress two thirds of the way to the end of generation (the last one
        # all the way), so a retry never stalls progress and a first success leaves room after it.
        base = monitor.progress
        span = (GENERATION_SHARE - base) * (1.0 if attempt == settings.max_attempts - 1 else 2 / 3)

        def progress(p: float, _base: float = base, _span: float = span) -> None:
            monitor.set_progress(_base + p * _span)

        started = time.perf_counter()
        audio = engine.generate([request], progress=progress)[0]
        report = analyze(audio.samples, audio.sample_rate, spec.kind, thresholds, prompt=params.prompt)
        entry = {
            "attempt": attempt + 1,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 3),
            "kind": spec.kind,
            **report.to_dict(),
        }
        log_entries.append(entry)
        jobs.record_attempt(monitor.job_id, monitor.worker, entry)
        metrics.ATTEMPTS.labels(model=spec.id).inc()
        metrics.QUALITY.labels(model=spec.id).observe(report.score)
        if attempt:
            metrics.RETRIES.labels(model=spec.id).inc()
        log.info(
            "attempt done", job_id=str(monitor.job_id), attempt=attempt + 1, score=report.score, is_good=report.is_good
        )
        if best is None or report.score > best.report.score:
            best = Candidate(audio, report, attempt + 1)
        if report.is_good:
            break
        monitor.check()
    assert best is not None
    if not best.report.is_good:
        log.warning(
            "no attempt passed the quality check; keeping the best",
            job_id=str(monitor.job_id),
            attempts=len(log_entries),
            kept=best.attempt,
            score=best.report.score,
            issues=[i.code for i in best.report.issues],
        )
    return best, log_entries


@dataclass
class Rendered:
    wav: bytes
    png: bytes
    duration: float
    sample_rate: int
    channels: int


def postprocess(audio: GeneratedAudio, params: JobParams, settings: Settings) -> Rendered:
    """Loop (when asked), loudness-normalize, encode, draw the spectrogram: one clip."""
    samples, sr = audio.samples, audio.sample_rate
    if params.loopable:
        fade = loop_crossfade_seconds(params.duration or 0.0, settings.loop_crossfade_seconds)
        samples = make_loopable(samples, sr, fade)
    samples = normalize_loudness(samples, sr, settings.loudness_target_lufs, settings.true_peak_dbtp)
    return Rendered(
        wav=encode_wav(samples, sr),
        png=render_spectrogram_png(samples, sr),
        duration=samples.shape[-1] / sr,
        sample_rate=sr,
        channels=samples.shape[0],
    )


def store_sound(store: ObjectStore, job: Job, rendered: Rendered, report: QualityReport) -> Sound:
    params = JobParams.from_row(job.params)
    sound_id = uuid.uuid4()
    audio_key, spectrogram_key = sound_keys(str(sound_id))
    store.put(audio_key, rendered.wav, "audio/wav")
    store.put(spectrogram_key, rendered.png, "image/png")
    return Sound(
        id=sound_id,
        job_id=job.id,
        account_id=job.account_id,
        model=job.model,
        prompt=params.prompt,
        duration=rendered.duration,
        sample_rate=rendered.sample_rate,
        channels=rendered.channels,
        loopable=params.loopable,
        quality_score=report.score,
        quality_is_good=report.is_good,
        quality_issues=[i.to_dict() for i in report.issues],
        audio_key=audio_key,
        spectrogram_key=spectrogram_key,
    )


def run_job(
    job_id: uuid.UUID,
    *,
    worker: str,
    settings: Settings,
    catalog: dict[str, ModelSpec],
    models: MemoryManager,
    store: ObjectStore,
) -> str:
    """Run one job to a terminal state. Returns what happened (for logs and tests)."""
    job = jobs.claim(job_id, worker, settings.job_lease_seconds)
    if job is None:
        current = jobs.get(job_id)
        return f"skipped: {current.status if current else 'no such job'}"
    bound = log.bind(job_id=str(job_id), model=job.model)
    if job.deliveries > settings.max_attempts:
        jobs.finish(
            job_id,
            worker,
            JobStatus.failed,
            f"the job's worker stopped {job.deliveries - 1} times while running it; giving up",
        )
        return "failed: too many deliveries"
    bound.info("job started", delivery=job.deliveries)
    started = time.perf_counter()
    outcome = _run_claimed(job, bound, worker=worker, settings=settings, catalog=catalog, models=models, store=store)
    metrics.JOB_SECONDS.labels(model=job.model, outcome=outcome.split(":")[0]).observe(time.perf_counter() - started)
    return outcome


def _run_claimed(
    job: Job,
    bound,
    *,
    worker: str,
    settings: Settings,
    catalog: dict[str, ModelSpec],
    models: MemoryManager,
    store: ObjectStore,
) -> str:
    job_id = job.id
    try:
        with JobMonitor(job_id, worker, settings.job_lease_seconds) as monitor:
            spec = catalog[job.model]
            params = JobParams.from_row(job.params)
            # The model is held (never unloaded) while it generates; post-processing runs after release.
            with models.lease(job.model) as engine:
                monitor.check()
                best, attempts = generate_until_good(engine, spec, params, settings, monitor)
            rendered = postprocess(best.audio, params, settings)
            monitor.set_progress(0.97)
            sound = store_sound(store, job, rendered, best.report)
            sound.categories = categorize(spec.kind, sound.prompt, sound.loopable, rendered.wav)  # library categories
            monitor.check()
        if not jobs.succeed(job_id, worker, sound, kept_from_end=len(attempts) - best.attempt):
            store.delete(sound.audio_key)
            store.delete(sound.spectrogram_key)
            return "lost: another delivery owns the job"
        bound.info("job succeeded", sound_id=str(sound.id), score=best.report.score, attempt=best.attempt)
        return "succeeded"
    except JobCanceled:
        jobs.finish(job_id, worker, JobStatus.canceled, "canceled by request")
        bound.info("job canceled while running")
        return "canceled"
    except LeaseLost:
        bound.warning("lease lost; another delivery owns the job")
        return "lost: lease taken over"
    except (ModelUnavailable, InsufficientMemory, GenerationOutOfMemory) as exc:
        jobs.finish(job_id, worker, JobStatus.failed, str(exc))
        bound.error("model unavailable", reason=type(exc).__name__, error=str(exc))
        return "failed"
    except Exception as exc:
        jobs.finish(job_id, worker, JobStatus.failed, f"{type(exc).__name__}: {exc}")
        bound.exception("job failed")
        return "failed"
