"""Celery task and worker lifecycle: the model memory manager, the batch loop, warm-up, presence,
lease recovery. The task is a wake-up for the batch loop (worker/serving.py)."""

from __future__ import annotations

import threading
import uuid
from functools import lru_cache
from typing import Any

import structlog
from celery import signals

from shared.domain import jobs, reconcile
from shared.domain.catalog import get_catalog
from shared.infra import broker, registry
from shared.infra.celery_app import GENERATE_TASK, QUEUES, celery_app, enqueue_job
from shared.infra.storage import get_store
from shared.settings import get_settings
from worker import metrics
from worker.memory import MemoryManager
from worker.serving import BatchLoop

log = structlog.get_logger()


class WorkerRuntime:
    """What one worker process owns: its name, models, store and background duties."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.presence = registry.Presence(self.settings.redis_url)
        self.name = self.presence.name
        self.catalog = get_catalog(self.settings)
        self.models = MemoryManager(self.catalog, self.settings, self.settings.device, on_change=self.announce)
        self.store = get_store(self.settings)
        self.queues: list[str] = []
        self.loop = BatchLoop(
            worker=self.name,
            settings=self.settings,
            catalog=self.catalog,
            models=self.models,
            store=self.store,
            serves=lambda: self.queues,
            stopping=self.presence.stopped.is_set,
        )
        self.consuming = False  # Celery takes tasks (set when the worker is ready)
        self._started = False
        self._redis: Any = None

    def start_background(self, queues: list[str]) -> None:
        if self._started:
            return
        self._started = True
        self.queues = queues
        self.announce()
        threading.Thread(target=self._background, name="soundbox-background", daemon=True).start()

    def stop(self) -> None:
        """Warm shutdown begins: the batch loop stops claiming new jobs (``stopping``) and finishes
        those it holds while Celery waits for the running task; idle models are unloaded."""
        self.presence.stop()
        self.models.close()

    @property
    def ready(self) -> bool:
        """Taking jobs, with no model loading or warming up."""
        return self.consuming and not self.models.warming

    def announce(self) -> None:
        """The heartbeat: queues, device, readiness, each model's state and footprint, device memory."""
        if self.presence.stopped.is_set():
            return
        self.presence.announce(
            {
                "queues": self.queues,
                "device": self.settings.device,
                "ready": self.ready,
                "loaded": self.models.loaded(),
                "models": self.models.snapshot(),
                "memory": self.models.memory(),
            }
        )

    def _background(self) -> None:
        interval = min(self.settings.recovery_interval, self.settings.aging_seconds, registry.TTL_SECONDS // 3)
        while not self.presence.stopped.is_set():
            try:
                self.models.unload_idle()
                self.announce()
                self.recover_expired()
                self.promote_aged()
                self.resend_stranded()
            except Exception as exc:  # keep the loop alive through outages
                log.warning("background duty failed", error=str(exc))
            self.presence.stopped.wait(interval)

    def promote_aged(self) -> None:
        """Aging: send waiting jobs again at their raised priority."""
        for job_id, model, priority in jobs.promote_aged(self.settings.aging_seconds):
            enqueue_job(str(job_id), self.catalog[model].queue, priority)

    def resend_stranded(self) -> None:
        """No job left behind: send again queued jobs whose broker message is gone (shared/domain/reconcile.py)."""
        present = broker.pending_task_ids(self.presence_redis(), QUEUES)
        for job_id, model, priority in reconcile.stranded(present, self.settings.reconcile_grace_seconds):
            log.warning("re-sending queued job whose message is gone", job_id=str(job_id), priority=priority)
            enqueue_job(str(job_id), self.catalog[model].queue, priority)

    def presence_redis(self):
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        return self._redis

    def recover_expired(self) -> None:
        """Requeue running jobs whose worker died (lease expired) so another delivery runs them."""
        for job in jobs.requeue_expired():
            log.warning("recovering job with expired lease", job_id=str(job.id), worker=job.worker)
            enqueue_job(str(job.id), self.catalog[job.model].queue, job.priority)


@lru_cache
def runtime() -> WorkerRuntime:
    return WorkerRuntime()


@celery_app.task(name=GENERATE_TASK)
def generate(job_id: str) -> str:
    """Wake the batch loop for ``job_id``: it serves that job and every compatible or later one waiting."""
    return runtime().loop.serve(uuid.UUID(job_id))


@signals.worker_ready.connect
def _on_ready(sender=None, **_) -> None:
    rt = runtime()
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    rt.start_background(queues)
    rt.consuming = True
    rt.announce()
    if rt.settings.worker_metrics_port:
        metrics.serve(rt.settings.worker_metrics_port, rt.models, rt.settings.device)
    log.info("worker ready", worker=rt.name, queues=queues, device=rt.settings.device, catalog=rt.settings.catalog)


@signals.worker_shutting_down.connect
def _on_shutting_down(**_) -> None:
    runtime().stop()


def warm_up(queues: list[str] | None = None) -> None:
    """Pay one-off costs before the first job: librosa/numba compilation, tiny checkpoints, and
    the preloaded models (loaded and warmed up). The worker announces itself meanwhile (not
    ready, its models `warming`), so `soundbox up` and /v1/models can tell."""
    from shared.audio.spectrogram import warm_up as warm_spectrogram

    rt = runtime()
    if queues is not None:
        rt.start_background(sorted(queues))
    warm_spectrogram()
    if rt.settings.catalog == "tiny":
        from worker.engines.tiny import ensure_tiny_checkpoints

        ensure_tiny_checkpoints(rt.settings.models_dir / "tiny")
    preloaded = rt.models.preload(serves=queues)
    log.info("preloaded", models=preloaded, memory=rt.models.memory())
