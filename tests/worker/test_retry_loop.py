"""The pipeline's quality retry loop with a small real engine whose audio we choose: each attempt
asks for the next seed, the first good clip ends the loop, the best one is kept (and said to be
accepted anyway) when none passes, and a cancel stops the loop between attempts. The job rows,
the lease monitor and the quality analyzer are the real ones."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import numpy as np
import pytest

from shared.audio.quality import analyze, thresholds_for
from shared.domain import jobs
from shared.domain.accounts import create_account_with_key
from shared.domain.catalog import ModelSpec, get_catalog
from shared.domain.jobview import job_out
from shared.domain.models import Job, JobStatus, Sound
from shared.domain.params import JobParams
from shared.infra.db import session_scope
from shared.infra.storage import get_store
from shared.settings import Settings, get_settings
from tests.shared.audio_corpus import inject, music_chords
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ProgressFn
from worker.pipeline import JobCanceled, JobMonitor, generate_until_good, postprocess, store_sound

SR = 32000


class ScriptedEngine(Engine):
    """An engine of our interface making chosen audio: attempt n (in call order) plays
    ``script[n]`` — ``good`` (chords), ``clipped`` (those chords hard-clipped), ``noise``
    (white noise where music was asked) or ``silent``. ``on_call`` runs inside a call."""

    def __init__(self, spec: ModelSpec, script: Sequence[str], on_call=None):
        super().__init__(spec, "cpu")
        self.script, self.on_call = list(script), on_call
        self.seeds: list[int] = []

    @property
    def sample_rate(self) -> int:
        return SR

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[GeneratedAudio]:
        out = []
        for request in requests:
            what = self.script[len(self.seeds)]
            self.seeds.append(request.seed)
            if self.on_call is not None:
                self.on_call(len(self.seeds), progress)
            n = round(request.duration * SR)
            rng = np.random.default_rng(request.seed)
            chords = music_chords(rng, n, SR) * 0.5
            samples = {
                "good": chords,
                "clipped": inject("clipping", chords, SR, rng, "music")[0],
                "noise": rng.normal(0, 0.1, n),
                "silent": np.zeros(n),
            }[what]
            if progress is not None:
                progress(1.0)
            out.append(GeneratedAudio(samples[None].astype(np.float32), SR))
        return out


@pytest.fixture
def claimed(database, redis_client):
    """A music job claimed by this test's worker name, as the pipeline finds it."""
    with session_scope() as s:
        account = create_account_with_key(s, f"retry-{uuid.uuid4().hex[:8]}", "creator").account
        job = Job(
            account_id=account.id, model="music", params=JobParams(prompt="calm piano", duration=1.5, seed=41).to_row()
        )
        s.add(job)
    worker = f"test-{uuid.uuid4().hex[:8]}"
    taken = jobs.claim(job.id, worker, lease_seconds=30)
    assert taken is not None
    yield taken, worker
    jobs.finish(job.id, None, JobStatus.canceled, "test over")  # no-op when the test finished it


def stored_job(job_id: uuid.UUID) -> Job:
    job = jobs.get(job_id)
    assert job is not None
    return job


def run_loop(claimed, script, settings: Settings | None = None, on_call=None, seed: int | None = None):
    job, worker = claimed
    settings = settings or get_settings()
    spec = get_catalog(settings)["music"]
    params = JobParams.from_row(job.params)
    if seed is not None:
        params = params.model_copy(update={"seed": seed})
    engine = ScriptedEngine(spec, script, on_call)
    with JobMonitor(job.id, worker, settings.job_lease_seconds, interval=0.05) as monitor:
        best, entries = generate_until_good(engine, spec, params, settings, monitor)
    return engine, best, entries, monitor


def test_first_good_attempt_ends_the_loop(claimed):
    engine, best, entries, _ = run_loop(claimed, ["good", "good", "good"])
    assert engine.seeds == [41] and best.attempt == 1 and best.report.is_good
    assert [e["seed"] for e in entries] == [41]
    stored = stored_job(claimed[0].id)
    assert stored.attempts == 1 and stored.attempt_log[0]["is_good"] is True


def test_each_retry_asks_for_the_next_seed_until_one_is_good(claimed):
    engine, best, entries, monitor = run_loop(claimed, ["silent", "noise", "good"])
    assert engine.seeds == [41, 42, 43]
    assert [e["attempt"] for e in entries] == [1, 2, 3] and [e["seed"] for e in entries] == [41, 42, 43]
    assert [e["is_good"] for e in entries] == [False, False, True]
    assert best.attempt == 3 and best.report.is_good
    assert stored_job(claimed[0].id).attempts == 3  # every attempt logged on the row as it happened
    assert 0 < monitor.progress <= 0.9


def test_the_seed_wraps_within_31_bits(claimed):
    engine, *_ = run_loop(claimed, ["silent", "good"], seed=2**31 - 1)
    assert engine.seeds == [2**31 - 1, 0]


def test_no_good_attempt_keeps_the_best_and_says_it_was_accepted_anyway(claimed, tmp_path):
    job, worker = claimed
    settings = get_settings()
    engine, best, entries, _ = run_loop(claimed, ["noise", "clipped", "noise"], settings)
    assert engine.seeds == [41, 42, 43] and len(entries) == settings.max_attempts
    scores = [e["score"] for e in entries]
    assert scores.count(max(scores)) == 1, scores  # clipped music beats white noise, alone
    assert best.attempt == scores.index(max(scores)) + 1 == 2 and not best.report.is_good  # not the last one
    # the kept clip is the one generated for that attempt (same analysis, recomputed)
    again = analyze(best.audio.samples, best.audio.sample_rate, "music", thresholds_for("music"))
    assert again.score == max(scores)

    # Stored and finished as the pipeline does it: the job says which attempt was kept.
    store = get_store(settings.model_copy(update={"storage_dir": tmp_path}))
    params = JobParams.from_row(job.params)
    sound = store_sound(store, job, postprocess(best.audio, params, settings), best.report)
    assert jobs.succeed(job.id, worker, sound, kept_from_end=len(entries) - best.attempt)
    with session_scope() as s:
        shown = job_out(stored_job(job.id), s.get(Sound, sound.id))
    assert shown.status is JobStatus.succeeded
    assert shown.result is not None and shown.result.quality.accepted_anyway
    assert shown.result.quality.score == max(scores) and "kept anyway" in (shown.result.quality.note or "")
    assert [a.kept for a in shown.attempt_history] == [i + 1 == best.attempt for i in range(3)]


def test_fewer_attempts_when_configured(claimed):
    settings = get_settings().model_copy(update={"max_attempts": 2})
    engine, best, entries, _ = run_loop(claimed, ["silent", "noise", "good"], settings)
    assert engine.seeds == [41, 42] and len(entries) == 2 and not best.report.is_good


def test_a_cancel_during_an_attempt_stops_the_loop(claimed):
    job, _ = claimed

    def cancel_in_second_attempt(call: int, progress: ProgressFn) -> None:
        if call != 2:
            return
        with session_scope() as s:
            jobs.cancel(s, job.id)  # the API's cancel of a running job: a flag for the worker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the monitor's heartbeat brings the flag back
            progress(1 - (deadline - time.monotonic()) / 30)  # rising progress: written at once
            time.sleep(0.05)
        raise AssertionError("the cancel never reached the generation loop")

    with pytest.raises(JobCanceled):
        run_loop(claimed, ["silent", "good", "good"], on_call=cancel_in_second_attempt)
    stored = stored_job(job.id)
    assert stored.attempts == 1 and stored.cancel_requested  # the interrupted attempt is not logged
