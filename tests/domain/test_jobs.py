"""The job-state module on the real PostgreSQL (and Redis for the published events): each
transition happens only from the state it changes, and records its event (with the webhook
delivery it owes) in the same transaction."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import redis
from sqlalchemy import text
from sqlmodel import Session, col, select

from shared.domain import events, jobs, sampling
from shared.domain.accounts import create_account_with_key
from shared.domain.catalog import get_catalog
from shared.domain.errors import IdempotencyConflict, InvalidField, JobFinished, LimitReached, QueueUnavailable
from shared.domain.models import Account, IdempotencyKey, Job, JobStatus, Sound, WebhookDelivery, utcnow
from shared.domain.params import JobParams
from shared.domain.schemas import GenerationCreate
from shared.infra.db import get_engine, session_scope
from shared.settings import Settings, get_settings
from tests.conftest import free_port

WEBHOOK = "http://127.0.0.1:9/hook"  # never called: these tests only look at the delivery rows


@pytest.fixture
def account(database, redis_client):
    """A fresh account; its jobs still queued or running afterwards are canceled, so no worker
    of a later test recovers and runs them."""
    with session_scope() as s:
        account = create_account_with_key(s, f"jobs-{uuid.uuid4().hex[:8]}", "creator").account
    yield account
    with session_scope() as s:
        left = s.exec(
            select(Job.id).where(
                col(Job.account_id) == account.id, col(Job.status).in_([JobStatus.queued, JobStatus.running])
            )
        ).all()
    for job_id in left:
        jobs.finish(job_id, None, JobStatus.canceled, "test over")


def new_job(
    account: Account,
    *,
    status: JobStatus = JobStatus.queued,
    worker: str | None = None,
    lease_in: float | None = None,
    webhook_events: list[str] | None = None,
    model: str = "music",
    priority: int = 5,
    **extra,
) -> uuid.UUID:
    job = Job(
        account_id=account.id,
        model=model,
        params=JobParams(prompt="a test", duration=1, seed=7).to_row(),
        status=status,
        worker=worker,
        priority=priority,
        queue_priority=priority,
        lease_expires_at=None if lease_in is None else utcnow() + timedelta(seconds=lease_in),
        webhook_url=WEBHOOK if webhook_events else None,
        webhook_events=webhook_events or [],
        **extra,
    )
    with session_scope() as s:
        s.add(job)
    return job.id


def row(job_id: uuid.UUID) -> Job:
    job = jobs.get(job_id)
    assert job is not None
    return job


def deliveries(job_id: uuid.UUID) -> list[str]:
    with session_scope() as s:
        return list(
            s.exec(
                select(WebhookDelivery.event_type)
                .where(col(WebhookDelivery.job_id) == job_id)
                .order_by(col(WebhookDelivery.created_at))
            ).all()
        )


def stream(redis_client, job_id: uuid.UUID) -> list[str]:
    return [json.loads(fields[b"event"])["type"] for _, fields in redis_client.xrange(events.stream_key(job_id))]


def sound_for(job_id: uuid.UUID, account: Account) -> Sound:
    return Sound(
        job_id=job_id,
        account_id=account.id,
        model="music",
        prompt="a test",
        duration=1.0,
        sample_rate=32000,
        channels=1,
        quality_score=90.0,
        quality_is_good=True,
        audio_key=f"sounds/{uuid.uuid4()}/audio.wav",
        spectrogram_key="x.png",
    )


# --- claim ---------------------------------------------------------------------------------------


def test_claim_takes_a_queued_job_and_records_job_started_with_its_delivery(account, redis_client):
    job_id = new_job(account, webhook_events=["job.started", "job.succeeded"])
    job = jobs.claim(job_id, "w1", lease_seconds=30)
    assert job is not None and job.status is JobStatus.running and job.worker == "w1" and job.deliveries == 1
    stored = row(job_id)
    assert stored.status is JobStatus.running and stored.started_at
    assert stored.lease_expires_at is not None and stored.lease_expires_at > utcnow()
    assert deliveries(job_id) == ["job.started"]  # committed with the state change
    assert stream(redis_client, job_id) == ["job.started"]


def test_duplicate_claim_under_a_live_lease_backs_off(account):
    job_id = new_job(account, webhook_events=["job.started"])
    assert jobs.claim(job_id, "w1", lease_seconds=30) is not None
    assert jobs.claim(job_id, "w2", lease_seconds=30) is None
    stored = row(job_id)
    assert stored.worker == "w1" and stored.deliveries == 1
    assert deliveries(job_id) == ["job.started"]  # no second event for the refused claim


def test_claim_after_the_lease_expired_takes_the_job_over(account):
    job_id = new_job(account)
    assert jobs.claim(job_id, "w1", lease_seconds=-1) is not None  # a lease already in the past
    taken = jobs.claim(job_id, "w2", lease_seconds=30)
    assert taken is not None and taken.worker == "w2" and taken.deliveries == 2


@pytest.mark.parametrize("status", [JobStatus.succeeded, JobStatus.failed, JobStatus.canceled])
def test_claim_of_a_finished_job_returns_none(account, status):
    job_id = new_job(account, status=status, webhook_events=["job.started"])
    assert jobs.claim(job_id, "w1", lease_seconds=30) is None
    assert row(job_id).status is status and deliveries(job_id) == []


def test_claim_of_an_unknown_job_returns_none(database):
    assert jobs.claim(uuid.uuid4(), "w1", lease_seconds=30) is None


def test_claim_many_takes_only_queued_jobs_in_priority_order_each_once(account, redis_client):
    from concurrent.futures import ThreadPoolExecutor

    ids = [new_job(account, priority=p, webhook_events=["job.started"]) for p in (3, 8, 5, 8)]
    done = new_job(account, status=JobStatus.canceled)
    with ThreadPoolExecutor(2) as pool:  # two workers claim the same company at once
        first, second = pool.map(lambda w: jobs.claim_many([*ids, done], w, lease_seconds=30), ["w1", "w2"])
    taken = first + second
    assert sorted(j.id for j in taken) == sorted(ids)  # each once, the canceled one by nobody
    for claimed in (first, second):
        assert [j.queue_priority for j in claimed] == sorted((j.queue_priority for j in claimed), reverse=True)
    for j in taken:
        assert row(j.id).status is JobStatus.running and row(j.id).deliveries == 1
        assert deliveries(j.id) == ["job.started"]  # its event, with the state change
    assert jobs.claim_many(ids, "w3", lease_seconds=30) == [] and jobs.claim_many([], "w3", 30) == []


def test_waiting_lists_queued_jobs_by_priority_then_the_preferred_model_then_age(account):
    with session_scope() as s:  # only this test's jobs
        s.exec(text("UPDATE jobs SET status = 'canceled' WHERE status = 'queued'"))
    old_audio = new_job(account, model="audio", priority=5)
    music = new_job(account, model="music", priority=5)
    urgent = new_job(account, model="audio", priority=9)
    new_job(account, model="voice", priority=9)  # a model this worker does not serve
    order = [w.id for w in jobs.waiting(["music", "audio"], prefer="music")]
    assert order == [urgent, music, old_audio]
    assert [w.id for w in jobs.waiting(["music", "audio"])] == [urgent, old_audio, music]


# --- heartbeat, attempts -------------------------------------------------------------------------


def test_heartbeat_renews_the_lease_and_tells_about_a_cancel(account):
    job_id = new_job(account)
    jobs.claim(job_id, "w1", lease_seconds=1)
    before = row(job_id).lease_expires_at
    assert jobs.heartbeat(job_id, "w1", lease_seconds=60, progress=0.4) is False
    after = row(job_id)
    assert before is not None and after.lease_expires_at is not None and after.lease_expires_at > before
    assert after.progress == pytest.approx(0.4)
    assert jobs.heartbeat(job_id, "w1", lease_seconds=60, progress=0.2) is False
    assert row(job_id).progress == pytest.approx(0.4)  # progress never goes back
    with session_scope() as s:
        assert jobs.cancel(s, job_id).cancel_requested
    assert jobs.heartbeat(job_id, "w1", lease_seconds=60) is True


def test_heartbeat_after_losing_the_lease_returns_none(account):
    job_id = new_job(account)
    jobs.claim(job_id, "w1", lease_seconds=-1)
    assert jobs.claim(job_id, "w2", lease_seconds=30) is not None  # taken over
    assert jobs.heartbeat(job_id, "w1", lease_seconds=30) is None
    assert row(job_id).worker == "w2"


def test_record_attempt_only_by_the_holder(account, redis_client):
    job_id = new_job(account)
    jobs.claim(job_id, "w1", lease_seconds=30)
    jobs.record_attempt(job_id, "w1", {"attempt": 1, "seed": 7, "score": 20.0, "is_good": False})
    jobs.record_attempt(job_id, "intruder", {"attempt": 2, "seed": 8, "score": 99.0, "is_good": True})
    stored = row(job_id)
    assert stored.attempts == 1 and [e["seed"] for e in stored.attempt_log] == [7]
    assert stream(redis_client, job_id) == ["job.started", "job.attempt"]


# --- succeed, finish -----------------------------------------------------------------------------


def test_succeed_only_by_the_holder_and_marks_the_kept_attempt(account, redis_client):
    job_id = new_job(account, webhook_events=["job.succeeded"])
    jobs.claim(job_id, "w1", lease_seconds=30)
    for n in (1, 2, 3):
        jobs.record_attempt(job_id, "w1", {"attempt": n, "seed": 6 + n, "score": 10.0 * n, "is_good": False})

    stranger = sound_for(job_id, account)
    assert jobs.succeed(job_id, "w2", stranger) is False
    with session_scope() as s:
        assert s.get(Sound, stranger.id) is None  # no sound without the state change
    assert row(job_id).status is JobStatus.running and deliveries(job_id) == []

    sound = sound_for(job_id, account)
    assert jobs.succeed(job_id, "w1", sound, kept_from_end=1) is True
    stored = row(job_id)
    assert stored.status is JobStatus.succeeded and stored.result_sound_id == sound.id and stored.progress == 1.0
    assert stored.lease_expires_at is None and stored.finished_at is not None
    assert [e["kept"] for e in stored.attempt_log] == [False, True, False]
    with session_scope() as s:
        assert s.get(Sound, sound.id) is not None
    assert deliveries(job_id) == ["job.succeeded"]
    assert stream(redis_client, job_id)[-1] == "job.succeeded"
    assert jobs.succeed(job_id, "w1", sound_for(job_id, account)) is False  # once only


def test_finish_only_by_the_holder_and_only_from_queued_or_running(account):
    job_id = new_job(account, webhook_events=["job.failed"])
    jobs.claim(job_id, "w1", lease_seconds=30)
    assert jobs.finish(job_id, "w2", JobStatus.failed, "not mine") is False
    assert row(job_id).status is JobStatus.running
    assert jobs.finish(job_id, "w1", JobStatus.failed, "boom " * 1000) is True
    stored = row(job_id)
    assert stored.status is JobStatus.failed and len(stored.error or "") == 2000 and stored.lease_expires_at is None
    assert jobs.finish(job_id, None, JobStatus.canceled, "late") is False  # terminal stays terminal
    assert row(job_id).status is JobStatus.failed and deliveries(job_id) == ["job.failed"]


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_a_queued_job_then_nothing_can_claim_it(account, redis_client):
    job_id = new_job(account, webhook_events=["job.canceled"])
    with session_scope() as s:
        job = jobs.cancel(s, job_id)
        assert job.status is JobStatus.canceled and job.finished_at is not None
    assert deliveries(job_id) == ["job.canceled"] and stream(redis_client, job_id) == ["job.canceled"]
    assert jobs.claim(job_id, "w1", lease_seconds=30) is None


def test_cancel_a_running_job_sets_the_flag_only(account):
    job_id = new_job(account, webhook_events=["job.canceled"])
    jobs.claim(job_id, "w1", lease_seconds=30)
    with session_scope() as s:
        job = jobs.cancel(s, job_id)
    assert job.status is JobStatus.running and job.cancel_requested and deliveries(job_id) == []


def test_cancel_a_finished_job_is_refused(account):
    job_id = new_job(account, status=JobStatus.succeeded)
    with session_scope() as s, pytest.raises(JobFinished, match="already finished \\(succeeded\\)"):
        jobs.cancel(s, job_id)
    assert row(job_id).status is JobStatus.succeeded and not row(job_id).cancel_requested


# --- recovery, aging, affinity -------------------------------------------------------------------


def test_requeue_expired_takes_back_dead_workers_jobs_only(account, redis_client):
    dead = new_job(account)
    alive = new_job(account)
    jobs.claim(dead, "dead-worker", lease_seconds=-1)
    jobs.claim(alive, "live-worker", lease_seconds=60)
    requeued = jobs.requeue_expired()
    stored = row(dead)
    # (a worker process of another test could sweep first: the end state is what counts)
    assert stored.status is JobStatus.queued and stored.worker is None and stored.lease_expires_at is None
    assert all(j.status is JobStatus.queued for j in requeued)
    assert stream(redis_client, dead) == ["job.started", "job.queued"]
    assert row(alive).status is JobStatus.running and row(alive).worker == "live-worker"
    assert dead not in {j.id for j in jobs.requeue_expired()}  # once


def test_promote_aged_raises_waiting_jobs_once_per_step(account):
    job_id = new_job(account, priority=2, created_at=utcnow() - timedelta(seconds=95))
    fresh = new_job(account, priority=2)
    try:
        raised = {j: p for j, _, p in jobs.promote_aged(aging_seconds=30)}
        assert raised.get(job_id, row(job_id).queue_priority) == 5  # 2 + floor(95 / 30)
        assert row(job_id).queue_priority == 5 and row(job_id).priority == 2
        assert job_id not in {j for j, _, _ in jobs.promote_aged(aging_seconds=30)}  # not twice
        assert row(fresh).queue_priority == 2
    finally:  # leave nothing queued that a worker of a later test might pick up
        with session_scope() as s:
            for j in (job_id, fresh):
                jobs.cancel(s, j)


# --- submit --------------------------------------------------------------------------------------


def _submit(account: Account, settings: Settings | None = None, key: str | None = None, **body) -> jobs.Submission:
    settings = settings or get_settings()
    request = GenerationCreate.model_validate({"model": "music", "prompt": "calm piano", "duration": 2, **body})
    with Session(get_engine(), expire_on_commit=False) as s:
        return jobs.submit(
            session=s,
            account=account,
            request=request,
            catalog=get_catalog(settings),
            settings=settings,
            idempotency_key=key,
        )


def test_submit_stores_typed_params_and_the_queued_event(account, redis_client):
    done = _submit(account, seed=41, priority=9, webhook_url=WEBHOOK)
    assert not done.replayed
    stored = row(done.job.id)
    params = JobParams.from_row(stored.params)
    # sampling controls are stored resolved to the model's defaults (shared/domain/sampling.py)
    defaults = {name: c.default for name, c in sampling.controls_for(get_catalog(get_settings())["music"]).items()}
    assert params == JobParams(prompt="calm piano", duration=2, seed=41, loopable=False, **defaults)
    assert "voice" not in stored.params  # an unset optional field is not stored
    assert stored.status is JobStatus.queued and stored.priority == 9  # creator tier: 0-9
    assert stored.webhook_events == ["job.succeeded", "job.failed", "job.canceled"]
    assert stream(redis_client, done.job.id) == ["job.queued"]
    jobs.finish(done.job.id, None, JobStatus.canceled, "test over")


def test_submit_fixes_a_random_seed_and_the_voice_for_speech(account):
    done = _submit(account, model="voice", prompt="Hello there.", duration=None)
    params = JobParams.from_row(row(done.job.id).params)
    assert 0 <= params.seed < 2**31 and params.duration is None and params.voice == "en_US-joe-medium"
    jobs.finish(done.job.id, None, JobStatus.canceled, "test over")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration": 121}, "duration"),
        ({"voice": "x"}, "voice"),
        ({"model": "voice", "loopable": True}, "loopable"),
        ({"webhook_events": ["job.failed"]}, "webhook_events"),
    ],
)
def test_submit_refuses_what_the_model_or_tier_does_not_allow_leaving_no_row(account, body, field):
    with pytest.raises(InvalidField) as refused:
        _submit(account, **body)
    assert refused.value.field == field
    with session_scope() as s:
        assert s.exec(select(Job).where(col(Job.account_id) == account.id)).first() is None


def test_submit_with_an_idempotency_key_replays_and_refuses_another_body(account):
    key = f"key-{uuid.uuid4()}"
    first = _submit(account, key=key, seed=1)
    again = _submit(account, key=key, seed=1)
    assert again.replayed and again.job.id == first.job.id
    with pytest.raises(IdempotencyConflict, match="different request body"):
        _submit(account, key=key, seed=2)
    jobs.finish(first.job.id, None, JobStatus.canceled, "test over")


def test_submit_counts_pending_jobs_against_the_tier(account):
    settings = Settings(
        tiers={
            "creator": {
                "max_duration": 10,
                "max_pending": 2,
                "jobs_per_hour": 100,
                "priority_min": 0,
                "priority_max": 9,
            },
            "free": {"max_duration": 10, "max_pending": 1, "jobs_per_hour": 100, "priority_min": 0, "priority_max": 4},
        }
    )
    made = [_submit(account, settings).job.id for _ in range(2)]
    with pytest.raises(LimitReached) as refused:
        _submit(account, settings)
    assert refused.value.limit == "max_pending" and not refused.value.capacity and refused.value.retry_after > 0
    for job_id in made:
        jobs.finish(job_id, None, JobStatus.canceled, "test over")
    assert _submit(account, settings).job.id not in made  # room again


def test_submit_with_the_broker_down_fails_the_row_and_frees_the_key(account, redis_client):
    def unreachable_broker(job_id: str, queue: str, priority: int) -> None:
        redis.Redis(port=free_port(), socket_connect_timeout=1).ping()  # nothing listens there: a real refusal

    key = f"key-{uuid.uuid4()}"
    settings = get_settings()
    request = GenerationCreate(model="music", prompt="calm piano", duration=2)
    with Session(get_engine(), expire_on_commit=False) as s, pytest.raises(QueueUnavailable):
        jobs.submit(
            session=s,
            account=account,
            request=request,
            catalog=get_catalog(settings),
            settings=settings,
            idempotency_key=key,
            enqueue=unreachable_broker,
        )
    with session_scope() as s:
        job = s.exec(select(Job).where(col(Job.account_id) == account.id)).one()
        assert job.status is JobStatus.failed and job.error == "queue unavailable at submit"
        assert s.get(IdempotencyKey, (account.id, key)) is None
    assert stream(redis_client, job.id) == ["job.queued", "job.failed"]


def test_submit_async_writes_the_row_submit_would_and_reads_it_back(account, redis_client):
    """The API's async path (psycopg's pool, Core statements compiled once) stores every column
    as the ORM does: JSONB params and lists, the status enum, timestamps; read_async gives it back."""
    import asyncio

    import redis.asyncio as aioredis

    settings = get_settings()
    request = GenerationCreate(model="music", prompt="a bright brass fanfare", duration=1.0, priority=7)

    async def submit_and_read():
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            made = await jobs.submit_async(
                redis_client=client, account=account, request=request, catalog=get_catalog(settings), settings=settings
            )
            return made, await jobs.read_async(made.job.id), await jobs.read_async(uuid.uuid4())
        finally:
            await client.aclose()
            from shared.infra import aiodb

            await aiodb.close_pools()

    made, (read, sound), missing = asyncio.run(submit_and_read())
    assert missing is None and sound is None and not made.replayed
    with Session(get_engine()) as s:
        stored = s.get(Job, made.job.id)
        assert stored is not None
        assert stored.status is JobStatus.queued and read.status is JobStatus.queued
        assert stored.params == read.params == made.job.params and stored.params["prompt"] == "a bright brass fanfare"
        assert stored.created_at == read.created_at == made.job.created_at
        assert (stored.priority, stored.webhook_events, stored.attempt_log) == (7, [], [])
        assert read.model_dump() == stored.model_dump()
