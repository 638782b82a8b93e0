"""The Celery app shared by the API (which only sends tasks by name) and the workers.

Priorities: the API speaks 0-9 with 9 first; Redis' transport pops priority 0 first, so the
broker priority is ``9 - priority``. Late acknowledgement plus ``reject_on_worker_lost`` means a
task whose worker dies is delivered again after the visibility timeout.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid

import orjson
from celery import Celery
from kombu import Exchange, Queue

from shared.domain.catalog import MODEL_IDS
from shared.settings import get_settings

GENERATE_TASK = "soundbox.generate"
QUEUES = tuple(MODEL_IDS)  # one queue per model family: music, audio, magnet, voice
# Webhook deliveries have a queue of their own, served by `soundbox webhooks` (no GPU, no torch),
# so a slow receiver never holds generation work.
WEBHOOK_TASK = "soundbox.webhook.deliver"
WEBHOOK_QUEUE = "webhooks"


def broker_priority(priority: int) -> int:
    return 9 - priority


def create_celery() -> Celery:
    s = get_settings()
    app = Celery("soundbox", broker=s.redis_url)
    app.conf.update(
        # Each queue has its own direct exchange: a task sent to one queue lands in that queue only.
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in (*QUEUES, WEBHOOK_QUEUE)],
        task_default_queue=QUEUES[0],
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": s.broker_visibility_timeout,
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
            # Sweep for expired unacknowledged tasks every 10 s (not every 100 s).
            "unacked_restore_throttle": 1,
        },
    )
    return app


celery_app = create_celery()


def enqueue_job(job_id: str, queue: str, priority: int) -> None:
    """Send a job to its model's queue (by task name, so senders never import worker code)."""
    celery_app.send_task(GENERATE_TASK, args=[job_id], queue=queue, priority=broker_priority(priority), task_id=job_id)


def enqueue_webhook(delivery_id: str) -> None:
    """Send one webhook delivery to the webhook queue (the delivery row is already committed)."""
    celery_app.send_task(WEBHOOK_TASK, args=[delivery_id], queue=WEBHOOK_QUEUE)


_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def job_message(job_id: str, queue: str, priority: int) -> tuple[str, bytes]:
    """The Redis list and the bytes ``enqueue_job`` would push for this job (Celery's message
    protocol 2, as kombu's Redis transport stores it), for senders on an event loop: an LPUSH of
    these is the same send without blocking (api: shared/domain/jobs.submit_async)."""
    step = broker_priority(priority)
    key = queue if step == 0 else f"{queue}:{step}"  # kombu: one list per priority step, sep ":"
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = base64.b64encode(orjson.dumps([[job_id], {}, embed])).decode()
    message = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": GENERATE_TASK,
            "id": job_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": job_id,
            "parent_id": None,
            "argsrepr": repr([job_id]),
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": job_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": step,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return key, orjson.dumps(message)
