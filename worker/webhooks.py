"""The webhook worker (`soundbox webhooks`): the Celery task on the ``webhooks`` queue that makes
one try of a delivery, and the sweep that sends due retries and deliveries whose dispatch was lost.

Deliveries are rows (written with the job's state change, see shared/domain/events.py). A try claims its
row with a lease (one conditional UPDATE), so duplicate tasks never send twice at once; retries
wait in the row (``next_attempt_at``), not in the broker, so hours-long backoffs survive restarts
and never outlive the broker's visibility timeout. This module imports no engine and no torch.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import structlog
from celery import signals
from sqlalchemy import delete, or_, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from shared.domain.models import (
    IdempotencyKey,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookDisabledUrl,
    utcnow,
)
from shared.domain.webhooks import (
    Allowlist,
    Resolver,
    TryResult,
    account_secret,
    encode_body,
    next_delay,
    send,
    signed_headers,
    signing_secrets,
    system_resolver,
)
from shared.infra import registry
from shared.infra.celery_app import WEBHOOK_QUEUE, WEBHOOK_TASK, celery_app, enqueue_webhook
from shared.infra.db import session_scope
from shared.settings import Settings, get_settings

log = structlog.get_logger()
PENDING = WebhookDeliveryState.pending.value
REDISPATCH_AFTER = timedelta(seconds=120)  # a dispatched delivery not tried by then is sent again
PURGE_EVERY = 60.0  # seconds between purges of expired Idempotency-Keys


def claim(delivery_id: uuid.UUID, lease: timedelta) -> WebhookDelivery | None:
    """Take a due, pending delivery no one else is trying."""
    now = utcnow()
    with session_scope() as s:
        return s.scalars(
            update(WebhookDelivery)
            .where(
                col(WebhookDelivery.id) == delivery_id,
                col(WebhookDelivery.state) == PENDING,
                col(WebhookDelivery.next_attempt_at) <= now,
                or_(col(WebhookDelivery.lease_until).is_(None), col(WebhookDelivery.lease_until) < now),
            )
            .values(lease_until=now + lease)
            .returning(WebhookDelivery)
        ).first()


def _close(s, delivery: WebhookDelivery, values: dict) -> None:
    s.exec(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery.id, col(WebhookDelivery.lease_until) == delivery.lease_until)
        .values(lease_until=None, dispatched_at=None, **values)
    )


def deliver(delivery_id: uuid.UUID, settings: Settings, resolver: Resolver = system_resolver) -> str:
    """One try of one delivery, recorded. Returns what happened (for logs and tests)."""
    delivery = claim(delivery_id, timedelta(seconds=settings.webhook_timeout + 60))
    if delivery is None:
        return "skipped: not due, not pending or being tried"
    bound = log.bind(delivery_id=str(delivery.id), job_id=str(delivery.job_id), webhook_event=delivery.event_type)
    with session_scope() as s:
        disabled = s.get(WebhookDisabledUrl, (delivery.account_id, delivery.url))
        if disabled is not None:
            _close(
                s,
                delivery,
                dict(
                    state=WebhookDeliveryState.skipped.value,
                    finished_at=utcnow(),
                    last_error=f"not sent: this URL answered 410 Gone at "
                    f"{disabled.disabled_at.isoformat()} and is disabled",
                ),
            )
            bound.info("webhook skipped: URL disabled")
            return "skipped: URL disabled"
        secrets_ = signing_secrets(account_secret(s, delivery.account_id))
    body = encode_body(delivery.payload)
    attempt = delivery.attempts + 1
    started_at = utcnow()
    result = send(
        delivery.url,
        body,
        signed_headers(secrets_, delivery.webhook_id, body),
        allowlist=Allowlist.parse(settings.webhook_allowlist),
        timeout=settings.webhook_timeout,
        resolver=resolver,
    )
    outcome = _record(delivery, attempt, started_at, result, settings)
    bound.info(
        "webhook try",
        attempt=attempt,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        error=result.error,
        outcome=outcome,
    )
    return outcome


def _record(delivery: WebhookDelivery, attempt: int, started_at, result: TryResult, settings: Settings) -> str:
    now = utcnow()
    error = result.error
    if error is None and result.status_code is not None and 300 <= result.status_code < 400:
        error = "redirects are not followed"
    values: dict = dict(attempts=attempt, last_status_code=result.status_code, last_error=error)
    with session_scope() as s:
        s.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempt=attempt,
                attempted_at=started_at,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=error,
                address=result.address,
            )
        )
        if result.ok:
            outcome = WebhookDeliveryState.succeeded.value
        elif result.status_code == 410:
            outcome = WebhookDeliveryState.disabled.value
            s.exec(
                insert(WebhookDisabledUrl)
                .values(account_id=delivery.account_id, url=delivery.url, disabled_at=now, delivery_id=delivery.id)
                .on_conflict_do_nothing(index_elements=["account_id", "url"])
            )
        elif result.refused:
            outcome = WebhookDeliveryState.refused.value
        else:
            delay = next_delay(attempt, settings.webhook_retry_delays, result.retry_after)
            outcome = WebhookDeliveryState.failed.value if delay is None else PENDING
            if delay is not None:
                values["next_attempt_at"] = now + timedelta(seconds=delay)
        values["state"] = outcome
        if outcome != PENDING:
            values.update(finished_at=now, next_attempt_at=None)
        _close(s, delivery, values)
    return outcome


def dispatch_due(limit: int = 200) -> list[str]:
    """Mark due deliveries dispatched and send them to the queue: retries whose time has come, and
    deliveries whose first dispatch was lost (Redis down when their event was published)."""
    now = utcnow()
    with session_scope() as s:
        due = (
            select(col(WebhookDelivery.id))
            .where(
                col(WebhookDelivery.state) == PENDING,
                col(WebhookDelivery.next_attempt_at) <= now,
                or_(col(WebhookDelivery.lease_until).is_(None), col(WebhookDelivery.lease_until) < now),
                or_(
                    col(WebhookDelivery.dispatched_at).is_(None),
                    col(WebhookDelivery.dispatched_at) < now - REDISPATCH_AFTER,
                ),
            )
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = [
            str(r)
            for r in s.exec(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id).in_(due))
                .values(dispatched_at=now)
                .returning(col(WebhookDelivery.id))
            ).scalars()
        ]
    for delivery_id in ids:
        enqueue_webhook(delivery_id)
    return ids


def purge_idempotency_keys(limit: int = 1000) -> int:
    with session_scope() as s:
        expired = (
            select(col(IdempotencyKey.account_id), col(IdempotencyKey.key))
            .where(col(IdempotencyKey.expires_at) < utcnow())
            .limit(limit)
        )
        result = s.exec(
            delete(IdempotencyKey).where(tuple_(col(IdempotencyKey.account_id), col(IdempotencyKey.key)).in_(expired))
        )
        return result.rowcount or 0


class WebhookRuntime:
    """What one webhook worker process owns: its name, presence and the sweep."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.presence = registry.Presence(self.settings.redis_url)
        self.name = self.presence.name

    def start_background(self) -> None:
        threading.Thread(target=self._background, name="soundbox-webhook-sweep", daemon=True).start()

    def stop(self) -> None:
        self.presence.stop()

    def _background(self) -> None:
        announced = purged = 0.0
        clock = time.monotonic
        while not self.presence.stopped.is_set():
            try:
                if clock() - announced > registry.TTL_SECONDS / 3:
                    self.presence.announce({"queues": [WEBHOOK_QUEUE], "role": "webhooks"})
                    announced = clock()
                sent = dispatch_due()
                if sent:
                    log.info("webhook retries dispatched", count=len(sent))
                if clock() - purged > PURGE_EVERY:
                    purge_idempotency_keys()
                    purged = clock()
            except Exception as exc:  # keep sweeping through outages
                log.warning("webhook sweep failed", error=str(exc))
            self.presence.stopped.wait(self.settings.webhook_poll_interval)


_runtime: WebhookRuntime | None = None


def runtime() -> WebhookRuntime:
    global _runtime
    if _runtime is None:
        _runtime = WebhookRuntime()
    return _runtime


@celery_app.task(name=WEBHOOK_TASK)
def deliver_task(delivery_id: str) -> str:
    structlog.contextvars.bind_contextvars(delivery_id=delivery_id)
    try:
        return deliver(uuid.UUID(delivery_id), runtime().settings)
    finally:
        structlog.contextvars.unbind_contextvars("delivery_id")


@signals.worker_ready.connect
def _on_ready(sender=None, **_) -> None:
    rt = runtime()
    rt.start_background()
    log.info(
        "webhook worker ready",
        worker=rt.name,
        allowlist=rt.settings.webhook_allowlist or None,
        retry_schedule=rt.settings.webhook_retry_schedule,
    )


@signals.worker_shutdown.connect
def _on_shutdown(**_) -> None:
    runtime().stop()
