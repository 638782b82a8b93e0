"""The batch loop in this process, on the real job rows, object store and tiny audiocraft engines:
compatible jobs generate together, each from its own seed; the highest-priority job leads;
a cancel, a failing clip or a quality retry touches only its own job. An engine wrapper records
each generation call (and breaks one on purpose where a test says so); the model is the real one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from sqlalchemy import text

from shared.audio.io import decode_audio
from shared.domain import jobs
from shared.domain.accounts import create_account_with_key
from shared.domain.catalog import get_catalog
from shared.domain.models import Job, JobStatus, Sound
from shared.domain.params import JobParams
from shared.infra.db import session_scope
from shared.infra.storage import get_store
from shared.settings import get_settings
from worker.engines import load_engine
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ProgressFn
from worker.memory import MemoryManager
from worker.serving import BatchLoop


class Recording(Engine):
    """The real engine, with every call's requests recorded; ``before`` runs at the start of a call."""

    def __init__(self, inner: Engine):
        super().__init__(inner.spec, inner.device)
        self.inner = inner
        self.calls: list[list[GenerationRequest]] = []
        self.before: Callable[[Sequence[GenerationRequest]], None] | None = None
        self.silence_seeds: set[int] = set()  # clips of these seeds come back silent (a broken result)

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[GeneratedAudio]:
        self.calls.append(list(requests))
        if self.before is not None:
            self.before(requests)
        out = self.inner.generate(requests, progress)
        return [
            GeneratedAudio(np.zeros_like(c.samples), c.sample_rate) if r.seed in self.silence_seeds else c
            for r, c in zip(requests, out)
        ]

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def engines(database):
    made: dict[str, Recording] = {}
    settings = get_settings()

    def loader(spec, s, device):
        made[spec.id] = Recording(load_engine(spec, s, device))
        return made[spec.id]

    manager = MemoryManager(get_catalog(settings), settings, "cpu", loader=loader, warmer=None)
    yield manager, made
    manager.close()


@pytest.fixture
def loop(engines, tmp_path, redis_client):
    manager, made = engines
    with session_scope() as s:  # jobs other tests left queued would join our batches
        s.exec(text("UPDATE jobs SET status = 'canceled', error = 'test cleanup' WHERE status = 'queued'"))
    for engine in made.values():
        engine.calls.clear()
        engine.before, engine.silence_seeds = None, set()
    # One attempt per job (random-weight models make noise that never passes the quality check),
    # except where a test asks for a retry.
    settings = get_settings().model_copy(
        update={"storage_dir": tmp_path, "batch_window_seconds": 0.0, "max_attempts": 1}
    )
    loop = BatchLoop(
        worker=f"test-{uuid.uuid4().hex[:8]}",
        settings=settings,
        catalog=get_catalog(settings),
        models=manager,
        store=get_store(settings),
        serves=lambda: ["music", "audio"],
    )
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def account(database):
    with session_scope() as s:
        return create_account_with_key(s, f"batch-{uuid.uuid4().hex[:8]}", "creator").account.id


def queue(account, *, model="music", priority=5, **params) -> uuid.UUID:
    fields = {"prompt": "bright synth arpeggio", "duration": 2.0, "seed": 1, **params}
    with session_scope() as s:
        job = Job(
            account_id=account,
            model=model,
            priority=priority,
            queue_priority=priority,
            params=JobParams(**fields).to_row(),
        )
        s.add(job)
        s.flush()
        return job.id


def row(job_id: uuid.UUID) -> Job:
    job = jobs.get(job_id)
    assert job is not None
    return job


def audio_of(loop: BatchLoop, job_id: uuid.UUID) -> np.ndarray:
    job = row(job_id)
    assert job.status == JobStatus.succeeded, (job.status, job.error)
    with session_scope() as s:
        sound = s.get(Sound, job.result_sound_id)
        assert sound is not None
        data = loop.store.get(sound.audio_key)
    samples, _ = decode_audio(data)
    return samples


def test_compatible_jobs_generate_in_one_call_padded_to_a_warmed_shape(loop, engines, account):
    ids = [queue(account, seed=10 + i, duration=1.5 + i * 0.1) for i in range(5)]  # all in the 2 s bucket
    assert loop.serve(ids[0]) == "succeeded"
    calls = engines[1]["music"].calls
    assert len(calls) == 1 and len(calls[0]) == 8  # 5 jobs padded to the next batch size
    assert [r.seed for r in calls[0][:5]] == [10, 11, 12, 13, 14] and {r.duration for r in calls[0]} == {2.0}
    for i, job_id in enumerate(ids):
        job = row(job_id)
        assert job.status == JobStatus.succeeded, job.error
        entry = job.attempt_log[-1]
        assert entry["batch"] == 5 and entry["generated_seconds"] == 2.0
        assert audio_of(loop, job_id).shape[-1] == round((1.5 + i * 0.1) * 32000)  # trimmed to its own duration


def test_a_seeded_job_sounds_the_same_alone_and_beside_any_neighbours(loop, engines, account):
    alone = queue(account, seed=777, prompt="slow cello drone")
    loop.serve(alone)
    crowd = [queue(account, seed=s, prompt=p) for s, p in [(3, "fast drums"), (9, "a choir singing loudly")]]
    inside = queue(account, seed=777, prompt="slow cello drone")
    crowd += [queue(account, seed=4, prompt="x")]
    loop.serve(crowd[0])
    calls = engines[1]["music"].calls
    assert [len(c) for c in calls] == [1, 4]  # alone, then with three neighbours
    a, b = audio_of(loop, alone), audio_of(loop, inside)
    assert a.shape == b.shape
    # The tokens are identical (tests/worker/test_engines.py); the decoded audio differs only by float
    # rounding in the batched codec decoder, far below one 16-bit step.
    assert np.max(np.abs(a - b)) < 1e-4, np.max(np.abs(a - b))


def test_the_highest_priority_waiting_job_leads_the_next_batch(loop, engines, account):
    low = [queue(account, priority=1, duration=2.0, seed=i) for i in range(3)]
    urgent = queue(account, priority=8, duration=5.0, seed=99)  # another bucket: its own batch
    loop.serve(low[0])  # the task's job is claimed first, but does not go first
    calls = engines[1]["music"].calls
    assert [r.seed for r in calls[0]] == [99] and calls[0][0].duration == 5.0
    assert sorted(r.seed for r in calls[1][:3]) == [0, 1, 2]
    assert all(row(j).status == JobStatus.succeeded for j in [*low, urgent])


def test_a_job_of_another_model_at_higher_priority_is_served_first(loop, engines, account):
    music = queue(account, priority=2, seed=5)
    sfx = queue(account, model="audio", priority=7, seed=6, prompt="rain on a tin roof")
    loop.serve(music)
    assert [row(j).status for j in (music, sfx)] == [JobStatus.succeeded, JobStatus.succeeded]
    assert row(sfx).finished_at < row(music).finished_at


def test_cancelling_one_job_of_a_batch_leaves_its_neighbours(loop, engines, account):
    ids = [queue(account, seed=20 + i, duration=8.0) for i in range(4)]
    target = ids[2]

    def cancel_target(requests):
        with session_scope() as s:
            jobs.cancel(s, target)
        deadline = time.monotonic() + 10  # its monitor brings the flag back within a heartbeat
        while time.monotonic() < deadline and not row(target).cancel_requested:
            time.sleep(0.05)

    engines[1]["music"].before = cancel_target
    loop.serve(ids[0])
    time.sleep(0)  # (the loop returns only once every job it took is settled)
    assert row(target).status == JobStatus.canceled
    assert [row(j).status for j in ids if j != target] == [JobStatus.succeeded] * 3


def test_a_failing_clip_fails_only_its_own_job(loop, engines, account):
    ids = [queue(account, seed=30 + i) for i in range(3)]
    broken = queue(account, seed=33, prompt="this one breaks the engine")
    ids.append(broken)

    def refuse(requests):
        if any("breaks the engine" in r.prompt for r in requests):
            raise RuntimeError("the engine refused this clip")

    engines[1]["music"].before = refuse
    loop.serve(ids[0])
    assert row(broken).status == JobStatus.failed and "refused this clip" in (row(broken).error or "")
    assert [row(j).status for j in ids[:3]] == [JobStatus.succeeded] * 3
    sizes = [len(c) for c in engines[1]["music"].calls]
    assert sizes[0] == 4 and 1 in sizes  # the whole batch first, the broken job alone in the end


def test_a_quality_retry_joins_a_later_batch_with_the_next_seed(loop, engines, account):
    loop.settings = loop.settings.model_copy(update={"max_attempts": 2})
    engines[1]["music"].silence_seeds = {50}  # the first attempt of this job comes back silent
    retried = queue(account, seed=50)
    others = [queue(account, seed=60 + i) for i in range(2)]
    loop.serve(retried)
    job = row(retried)
    assert job.status == JobStatus.succeeded and job.attempts == 2
    assert [e["seed"] for e in job.attempt_log] == [50, 51] and job.attempt_log[0]["is_good"] is False
    seeds_per_call = [[r.seed for r in c] for c in engines[1]["music"].calls]
    assert 50 in seeds_per_call[0] and any(51 in s for s in seeds_per_call[1:])
    assert all(row(j).status == JobStatus.succeeded for j in others)


def test_a_failing_loop_stops_renewing_its_jobs_leases_so_the_sweep_recovers_them(loop, engines, account, monkeypatch):
    first, other = queue(account, seed=70), queue(account, seed=71)

    def database_gone(queued):
        raise ConnectionError("the database went away")

    monkeypatch.setattr(loop, "_claim_many", database_gone)  # claiming the first job's company fails
    with pytest.raises(ConnectionError):
        loop.serve(first)
    assert row(first).status == JobStatus.running and row(other).status == JobStatus.queued
    deadline = time.monotonic() + 3 * loop.settings.job_lease_seconds  # no monitor renews its lease now
    while first not in {j.id for j in jobs.requeue_expired()}:
        assert time.monotonic() < deadline, "its lease was still being renewed"
        time.sleep(0.5)
    assert row(first).status == JobStatus.queued and row(first).deliveries == 1  # the next delivery runs it
    assert not engines[1].get("music") or engines[1]["music"].calls == []  # nothing was generated


def test_the_batch_cap_follows_what_memory_allows(loop, engines, account, monkeypatch):
    ids = [queue(account, seed=80 + i) for i in range(5)]
    asked: list[str] = []

    def three_fit(model: str, limit: int = 64) -> int:  # what the memory manager says fits now
        asked.append(model)
        return 3

    monkeypatch.setattr(loop.models, "max_batch", three_fit)
    loop.serve(ids[0])
    assert asked and set(asked) == {"music"}
    assert [len(c) for c in engines[1]["music"].calls] == [2, 2, 1]  # 3 fit; 2 is the largest full shape
    assert all(row(j).status == JobStatus.succeeded for j in ids)


def test_a_job_whose_end_cannot_be_recorded_is_left_to_the_lease_sweep(loop, engines, account, monkeypatch):
    import worker.serving

    job_id = queue(account, seed=90)

    def database_gone(*args, **kwargs):
        raise ConnectionError("the database went away")

    monkeypatch.setattr(worker.serving, "complete", database_gone)  # storing the result fails...
    monkeypatch.setattr(worker.serving, "settle", database_gone)  # ...and so does recording the failure
    loop.serve(job_id)  # returns: nothing it holds is left half-done
    assert row(job_id).status == JobStatus.running
    deadline = time.monotonic() + 3 * loop.settings.job_lease_seconds  # its monitor stopped renewing
    while job_id not in {j.id for j in jobs.requeue_expired()}:
        assert time.monotonic() < deadline, "its lease was still being renewed"
        time.sleep(0.5)
    assert row(job_id).status == JobStatus.queued  # the next delivery generates it again
