"""One job's way from generated clip to stored sound: its attempts (check quality, regenerate
while broken), post-processing of the kept clip, storing, recording. Every step works per job,
so the clips of a batched ``generate()`` (worker/serving.py) go through it one by one.
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
from worker.batcher import generation_seconds
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ModelUnavailable
from worker.memory import GenerationOutOfMemory, InsufficientMemory, Lease

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

    def start(self) -> JobMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> JobMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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
        self.note_progress(value)
        self.check()

    def note_progress(self, value: float) -> None:
        self.progress = max(self.progress, min(1.0, value))

    @property
    def stopped(self) -> bool:
        """Canceled, or taken over by another delivery: its result is not wanted here."""
        return self.canceled or self.lost

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


class Attempts:
    """One job's generation attempts: the request for the next one, the verdict on each clip
    (analyzed, logged on the job row, the best kept), and whether to try again with the next seed
    (seed + 1 per attempt) while the result is not good, for at most ``max_attempts``."""

    def __init__(self, spec: ModelSpec, params: JobParams, settings: Settings, monitor: JobMonitor):
        self.spec, self.params, self.settings, self.monitor = spec, params, settings, monitor
        self.thresholds = thresholds_for(spec.kind, settings.quality_thresholds)
        self.seconds = generation_seconds(params, settings)
        self.attempt = 0  # attempts judged so far
        self.best: Candidate | None = None
        self.log: list[dict[str, Any]] = []
        self._started = time.perf_counter()
        self._base = self._span = 0.0
        self.start()

    @property
    def seed(self) -> int:
        return (self.params.seed + self.attempt) % 2**31

    def request(self, seconds: float | None = None) -> GenerationRequest:
        """The next attempt's request (``seconds``: the length to generate, the batch's bucket)."""
        return GenerationRequest(
            prompt=self.params.prompt,
            duration=self.seconds if seconds is None else seconds,
            seed=self.seed,
            voice=self.params.voice,
            controls=self.params.controls(),
        )

    def start(self) -> None:
        """An attempt begins: it moves progress two thirds of the way to the end of generation (the
        last one all the way), so a retry never stalls progress and a first success leaves room."""
        last = self.attempt == self.settings.max_attempts - 1
        self._base = self.monitor.progress
        self._span = (GENERATION_SHARE - self._base) * (1.0 if last else 2 / 3)
        self._started = time.perf_counter()

    def progress(self, p: float) -> None:
        """Generation progress of the current attempt (0..1); raises when the job was canceled."""
        self.monitor.set_progress(self._base + p * self._span)

    def note(self, p: float) -> None:
        """The same, never raising (inside a batch, one job's cancel must not stop its neighbours)."""
        self.monitor.note_progress(self._base + p * self._span)

    def judge(self, audio: GeneratedAudio, batch: int = 1) -> bool:
        """Analyze and log the attempt's clip. True when the job is done: the clip is good or no
        attempt is left (``best`` is the result); False: generate again (``request`` has the next seed)."""
        generated = audio.samples.shape[-1] / audio.sample_rate
        if self.spec.uses_duration:  # generated at the batch's bucket: the job's own length
            audio = GeneratedAudio(audio.samples[:, : round(self.seconds * audio.sample_rate)], audio.sample_rate)
        report = analyze(audio.samples, audio.sample_rate, self.spec.kind, self.thresholds, prompt=self.params.prompt)
        seed = self.seed
        self.attempt += 1
        entry = {
            "attempt": self.attempt,
            "seed": seed,
            "seconds": round(time.perf_counter() - self._started, 3),
            "kind": self.spec.kind,
            "batch": batch,
            "generated_seconds": round(generated, 3),
            **report.to_dict(),
        }
        self.log.append(entry)
        jobs.record_attempt(self.monitor.job_id, self.monitor.worker, entry)
        model = self.spec.id
        metrics.ATTEMPTS.labels(model=model).inc()
        metrics.QUALITY.labels(model=model).observe(report.score)
        if self.attempt > 1:
            metrics.RETRIES.labels(model=model).inc()
        log.info("attempt done", job_id=str(self.monitor.job_id), attempt=self.attempt, score=report.score)
        if self.best is None or report.score > self.best.report.score:
            self.best = Candidate(audio, report, self.attempt)
        done = report.is_good or self.attempt >= self.settings.max_attempts
        if done and not report.is_good:
            best = self.best
            log.warning(
                "no attempt passed the quality check; keeping the best",
                job_id=str(self.monitor.job_id),
                attempts=self.attempt,
                kept=best.attempt,
                score=best.report.score,
                issues=[i.code for i in best.report.issues],
            )
        if not done:
            self.monitor.check()
            self.start()
        return done

    @property
    def kept_from_end(self) -> int:
        assert self.best is not None
        return len(self.log) - self.best.attempt


def generate_until_good(
    engine: Engine | Lease, spec: ModelSpec, params: JobParams, settings: Settings, monitor: JobMonitor
) -> tuple[Candidate, list[dict[str, Any]]]:
    """One job alone through :class:`Attempts`: generate, judge, regenerate while not good.
    Returns the first good attempt, or the best-scoring one when none passes, and every
    attempt's log entry. (The worker runs the same attempts inside batches: worker/serving.py.)"""
    attempts = Attempts(spec, params, settings, monitor)
    while True:
        [audio] = engine.generate([attempts.request()], progress=attempts.progress)
        if attempts.judge(audio):
            assert attempts.best is not None
            return attempts.best, attempts.log


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


def complete(job: Job, attempts: Attempts, *, worker: str, settings: Settings, store: ObjectStore) -> str:
    """The kept clip to a stored sound and a succeeded job: post-processing, never holding the model."""
    best = attempts.best
    assert best is not None
    spec, monitor = attempts.spec, attempts.monitor
    rendered = postprocess(best.audio, attempts.params, settings)
    monitor.set_progress(0.97)
    sound = store_sound(store, job, rendered, best.report)
    sound.categories = categorize(spec.kind, sound.prompt, sound.loopable, rendered.wav)  # library categories
    monitor.check()
    if not jobs.succeed(job.id, worker, sound, kept_from_end=attempts.kept_from_end):
        store.delete(sound.audio_key)
        store.delete(sound.spectrogram_key)
        return "lost: another delivery owns the job"
    log.info("job succeeded", job_id=str(job.id), sound_id=str(sound.id), score=best.report.score, attempt=best.attempt)
    return "succeeded"


def settle(job_id: uuid.UUID, worker: str, exc: BaseException) -> str:
    """The terminal state a job reaches through ``exc``, recorded. Returns what happened."""
    bound = log.bind(job_id=str(job_id))
    if isinstance(exc, JobCanceled):
        jobs.finish(job_id, worker, JobStatus.canceled, "canceled by request")
        bound.info("job canceled while running")
        return "canceled"
    if isinstance(exc, LeaseLost):
        bound.warning("lease lost; another delivery owns the job")
        return "lost: lease taken over"
    if isinstance(exc, (ModelUnavailable, InsufficientMemory, GenerationOutOfMemory)):
        jobs.finish(job_id, worker, JobStatus.failed, str(exc))
        bound.error("model unavailable", reason=type(exc).__name__, error=str(exc))
        return "failed"
    jobs.finish(job_id, worker, JobStatus.failed, f"{type(exc).__name__}: {exc}")
    bound.error("job failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    return "failed"
