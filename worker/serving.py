"""The worker's generation loop: batches on the model, post-processing beside it.

A Celery task is a wake-up. ``BatchLoop.serve(job_id)`` claims the task's job, then keeps the
model busy: each round, ``next_batch`` (worker/batcher.py) picks the highest-priority waiting job
and claims compatible queued jobs from PostgreSQL to generate with it, in one call, under a lease
on the model. The clips go to a post-processing pool (quality check, loop, loudness, encoding,
spectrogram, store, the job's success) while the next batch generates. A clip that fails the
quality check comes back as a held job with its next seed and joins a later batch. The task
returns when nothing waits and every clip it took is settled (or after ``affinity_max_run``
batches, serving only what it holds from then on); the queue messages of jobs it took from the
database are skipped when they arrive (those jobs are no longer queued).

Delivery: every job is claimed (queued → running under a lease) before it is generated, and its
lease is renewed by its own monitor until a terminal state is recorded. A worker killed
mid-batch leaves every job of the batch running under an expiring lease; another worker's sweep
requeues and re-sends them (shared/domain/jobs.py ``requeue_expired``), so each finishes once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import structlog

from shared.domain import jobs
from shared.domain.catalog import ModelSpec
from shared.domain.models import Job, JobStatus
from shared.domain.params import JobParams
from shared.infra.outages import is_outage
from shared.infra.storage import ObjectStore
from shared.settings import Settings
from worker import metrics
from worker.batcher import BatchKey, Sources, cap_for, key_for, next_batch, ranked, shape_bucket
from worker.engines.base import GeneratedAudio, ModelUnavailable
from worker.memory import InsufficientMemory, MemoryManager
from worker.pipeline import Attempts, JobMonitor, complete, settle

log = structlog.get_logger()
PAD_SEED = 0  # padding clips (discarded) sample from their own generator too


class BatchAbandoned(Exception):
    """Every job of the batch was canceled or taken over while it generated."""


@dataclass
class InFlight:
    """A job this worker claimed, between its claim and its terminal state."""

    job: Job
    attempts: Attempts
    key: BatchKey
    claimed_at: float

    @property
    def rank(self) -> tuple[int, float]:
        return ranked(self.job.queue_priority, self.job.created_at)

    @property
    def monitor(self) -> JobMonitor:
        return self.attempts.monitor


@dataclass
class Queued:
    """A queued job as the batcher weighs it."""

    waiting: jobs.Waiting
    key: BatchKey

    @property
    def rank(self) -> tuple[int, float]:
        return ranked(self.waiting.priority, self.waiting.created_at)


class BatchLoop:
    """Generation for one worker process: one loop on its models, a pool post-processing beside it."""

    def __init__(
        self,
        *,
        worker: str,
        settings: Settings,
        catalog: dict[str, ModelSpec],
        models: MemoryManager,
        store: ObjectStore,
        serves: Callable[[], list[str]],
        stopping: Callable[[], bool] = lambda: False,
    ):
        self.worker, self.settings, self.catalog, self.models, self.store = worker, settings, catalog, models, store
        self._serves, self._stopping = serves, stopping
        self._post = ThreadPoolExecutor(settings.postprocess_threads, thread_name_prefix="postprocess")
        self._cond = threading.Condition()
        self._held: list[InFlight] = []  # claimed, waiting for (another) generation
        self._posting = 0  # steps queued or running in the post-processing pool
        self._judging = 0  # generated clips whose quality check has not run yet
        self._model: str | None = None  # the model of the last batch: affinity at equal priority
        self._outcomes: dict[uuid.UUID, str] = {}

    # --- the loop --------------------------------------------------------------------------------

    def serve(self, job_id: uuid.UUID) -> str:
        """Serve the task's job and whatever waits after it. Returns what became of the task's job."""
        first = self._claim_first(job_id)
        if isinstance(first, str):
            return first
        if first is not None:
            with self._cond:
                self._held.append(first)
        try:
            self._loop()
        except Exception:
            self._abandon_held()
            raise
        outcome = self._outcomes.pop(job_id, "served")
        self._outcomes.clear()  # the other jobs' outcomes were logged; nothing is posting now
        return outcome

    def _loop(self) -> None:
        batches = 0
        while True:
            claim_queued = batches < self.settings.affinity_max_run and not self._stopping()
            self._gather_retries()
            batch = self._next(claim_queued)
            if batch:
                try:
                    self._generate(batch)
                except Exception:
                    self._abandon(batch)
                    raise
                batches += 1
                continue
            with self._cond:
                if self._held:
                    continue
                if not self._posting:
                    break
                self._cond.wait(1.0)  # a clip in post-processing may come back for another attempt

    def _abandon_held(self) -> None:
        with self._cond:
            held, self._held = self._held, []
        self._abandon(held)

    def _abandon(self, items: list[InFlight]) -> None:
        """The loop itself failed (the database went away, say): stop renewing these jobs' leases,
        so the lease sweep of any worker requeues them once they expire. Nothing is lost."""
        for item in items:
            item.monitor.stop()
        if items:
            log.error("batch loop failed; its jobs are left to the lease sweep", jobs=[str(i.job.id) for i in items])

    def _gather_retries(self, limit: float = 10.0) -> None:
        """While retries wait, let the rest of their batch be judged first: retries that come back
        together generate together."""
        deadline = time.monotonic() + limit
        with self._cond:
            while self._held and self._judging and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def _next(self, claim_queued: bool) -> list[InFlight]:
        with self._cond:
            held, self._held = self._held, []
        before = list(held)
        try:
            return next_batch(
                Sources(held=held, queued=self._queued, claim=self._claim_many, cap=self._cap),
                window=self.settings.batch_window_seconds,
                claim_queued=claim_queued,
            )
        except Exception:
            held[:] = before  # none of them left for a batch
            raise
        finally:
            with self._cond:
                self._held.extend(held)  # the ones not taken

    def _queued(self) -> list[Queued]:
        models = [m for m in self._serves() if m in self.catalog]
        out = []
        for w in jobs.waiting(models, prefer=self._model, limit=4 * self.settings.batch_max):
            try:
                key = key_for(self.catalog[w.model], JobParams.from_row(w.params), self.settings)
            except Exception:  # unreadable parameters: left to the job's own task, which fails it
                continue
            out.append(Queued(w, key))
        return out

    def _cap(self, model: str) -> int:
        return cap_for(self.settings, self.models.max_batch(model, self.settings.batch_max))

    # --- claiming --------------------------------------------------------------------------------

    def _claim_first(self, job_id: uuid.UUID) -> InFlight | str | None:
        job = jobs.claim(job_id, self.worker, self.settings.job_lease_seconds)
        if job is None:
            current = jobs.get(job_id)
            return f"skipped: {current.status if current else 'no such job'}"
        return self._take(job)

    def _claim_many(self, queued: list[Queued]) -> list[InFlight]:
        if not queued:
            return []
        taken = jobs.claim_many([q.waiting.id for q in queued], self.worker, self.settings.job_lease_seconds)
        return [item for item in map(self._take, taken) if item is not None]

    def _take(self, job: Job) -> InFlight | None:
        """A claimed job, ready to generate; None when it ended at once (or could not even be
        recorded as ended: no monitor renews its lease, so the sweep requeues it)."""
        structlog.contextvars.bind_contextvars(job_id=str(job.id))
        try:
            if job.deliveries > self.settings.max_attempts:
                jobs.finish(
                    job.id,
                    self.worker,
                    JobStatus.failed,
                    f"the job's worker stopped {job.deliveries - 1} times while running it; giving up",
                )
                self._outcomes[job.id] = "failed: too many deliveries"
                return None
            log.info("job started", model=job.model, delivery=job.deliveries)
            monitor = JobMonitor(job.id, self.worker, self.settings.job_lease_seconds)
            try:
                spec = self.catalog[job.model]
                params = JobParams.from_row(job.params)
                attempts = Attempts(spec, params, self.settings, monitor)
                key = key_for(spec, params, self.settings)
            except Exception as exc:
                self._outcomes[job.id] = settle(job.id, self.worker, exc)
                return None
            monitor.start()
            return InFlight(job, attempts, key, time.perf_counter())
        except Exception as exc:
            log.error("could not take the job; its lease will lapse and the sweep requeues it", error=str(exc)[:300])
            return None
        finally:
            structlog.contextvars.unbind_contextvars("job_id")

    # --- generation ------------------------------------------------------------------------------

    def _generate(self, batch: list[InFlight]) -> None:
        """One generation call for ``batch`` (padded to a warmed shape); each clip then goes to
        post-processing. A failing call is split in halves until the failing job fails alone."""
        live = []
        for item in batch:
            if item.monitor.stopped:
                self._post_submit(self._stop_before_generation, item)
            else:
                live.append(item)
        if not live:
            return
        key = live[0].key
        self._model = key.model
        requests = [item.attempts.request(key.seconds) for item in live]
        shape = shape_bucket(len(requests), self.settings.batch_sizes)
        padded = requests + [replace(requests[0], seed=PAD_SEED)] * (shape - len(requests))

        def progress(p: float) -> None:
            for item in live:
                item.attempts.note(p)
            if all(item.monitor.stopped for item in live):
                raise BatchAbandoned

        started = time.perf_counter()
        try:
            with self.models.lease(key.model) as engine:
                clips = engine.generate(padded, progress=progress)[: len(live)]
        except BatchAbandoned:
            for item in live:
                self._post_submit(self._stop_before_generation, item)
            return
        except (ModelUnavailable, InsufficientMemory) as exc:  # no split helps: the model is not to be had
            for item in live:
                self._settle_now(item, exc)
            return
        except Exception as exc:
            if len(live) > 1:
                log.warning("batch failed; splitting it", model=key.model, jobs=len(live), error=str(exc)[:200])
                half = len(live) // 2
                self._generate(live[:half])
                self._generate(live[half:])
                return
            self._settle_now(live[0], exc)
            return
        metrics.BATCH_SIZE.labels(model=key.model).observe(len(live))
        metrics.BATCH_PADDING.labels(model=key.model).inc(shape - len(live))
        metrics.BATCH_SECONDS.labels(model=key.model).observe(time.perf_counter() - started)
        log.info(
            "batch generated",
            model=key.model,
            jobs=len(live),
            shape=shape,
            seconds=key.seconds,
            took=round(time.perf_counter() - started, 3),
        )
        with self._cond:
            self._judging += len(live)
        for item, clip in zip(live, clips):
            self._post_submit(self._after_generation, item, clip, len(live))

    # --- post-processing -------------------------------------------------------------------------

    def _post_submit(self, fn: Callable[..., None], *args: object) -> None:
        with self._cond:
            self._posting += 1
        self._post.submit(self._posted, fn, *args)

    def _posted(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # each step settles its own job; this only keeps the count right
            log.exception("post-processing step failed")
        finally:
            with self._cond:
                self._posting -= 1
                self._cond.notify_all()

    def _after_generation(self, item: InFlight, clip: GeneratedAudio, batch: int) -> None:
        """Judge the clip: another attempt goes back to the loop, a result is finished after the
        other clips of its batch are judged (so their retries can batch together)."""
        structlog.contextvars.bind_contextvars(job_id=str(item.job.id))
        try:
            try:
                done = item.attempts.judge(clip, batch)
            except Exception as exc:
                self._settle_now(item, exc)
                return
            if done:
                self._post_submit(self._complete, item)
                return
            with self._cond:
                self._held.append(item)  # another attempt, in a later batch
                self._cond.notify_all()
        finally:
            with self._cond:
                self._judging -= 1
                self._cond.notify_all()
            structlog.contextvars.unbind_contextvars("job_id")

    def _complete(self, item: InFlight) -> None:
        structlog.contextvars.bind_contextvars(job_id=str(item.job.id))
        try:
            try:
                outcome = complete(
                    item.job, item.attempts, worker=self.worker, settings=self.settings, store=self.store
                )
            except Exception as exc:
                self._settle_now(item, exc)
                return
            self._done(item, outcome)
        finally:
            structlog.contextvars.unbind_contextvars("job_id")

    def _stop_before_generation(self, item: InFlight) -> None:
        try:
            item.monitor.check()
        except Exception as exc:
            self._settle_now(item, exc)

    def _settle_now(self, item: InFlight, exc: BaseException) -> None:
        """Record the end ``exc`` brings the job to. An outage (PostgreSQL or Redis away) ends
        nothing: the job's monitor stops, its lease lapses and the sweep requeues it; so does a
        failure to record the end."""
        if is_outage(exc):  # PostgreSQL or Redis away: not the job's fault; another delivery runs it
            log.error(
                "a dependency is away; the job's lease will lapse and the sweep requeues it",
                job_id=str(item.job.id),
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            self._done(item, "abandoned")
            return
        try:
            outcome = settle(item.job.id, self.worker, exc)
        except Exception as again:
            log.error(
                "could not record the job's end; its lease will lapse and the sweep requeues it",
                job_id=str(item.job.id),
                error=f"{type(again).__name__}: {again}"[:300],
            )
            outcome = "abandoned"
        self._done(item, outcome)

    def _done(self, item: InFlight, outcome: str) -> None:
        item.monitor.stop()
        self._outcomes[item.job.id] = outcome
        metrics.JOB_SECONDS.labels(model=item.job.model, outcome=outcome.split(":")[0]).observe(
            time.perf_counter() - item.claimed_at
        )

    def close(self) -> None:
        self._post.shutdown(wait=True)
