"""Prometheus metrics of the API process: requests, latency, and the queue as PostgreSQL sees it.
Job timings, retries, quality scores, GPU memory and loaded models come from each worker's own
endpoint (worker/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func
from sqlmodel import Session, col, select

from shared.domain.models import Job, JobStatus, utcnow
from shared.infra.db import get_engine

REGISTRY = CollectorRegistry()
REQUESTS = Counter("soundbox_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "soundbox_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SHED = Counter(
    "soundbox_http_shed_total", "Requests refused with 503 because the process was at capacity", registry=REGISTRY
)
OUTAGES = Counter(
    "soundbox_dependency_unavailable_total",
    "Requests answered 503 because PostgreSQL or Redis was unreachable or busy",
    ["dependency"],
    registry=REGISTRY,
)


class QueueCollector:
    """Read at scrape time: waiting jobs per model and priority, the oldest wait, jobs by status."""

    def collect(self):
        depth = GaugeMetricFamily("soundbox_queue_depth", "Jobs waiting", labels=["model", "priority"])
        oldest = GaugeMetricFamily(
            "soundbox_queue_oldest_wait_seconds", "Wait of the oldest queued job", labels=["model"]
        )
        jobs = GaugeMetricFamily("soundbox_jobs", "Jobs by model and status", labels=["model", "status"])
        now = utcnow()
        with Session(get_engine()) as s:
            queued = col(Job.status) == JobStatus.queued
            for model, priority, n in s.exec(
                select(Job.model, Job.priority, func.count()).where(queued).group_by(col(Job.model), col(Job.priority))
            ):
                depth.add_metric([model, str(priority)], n)
            for model, first in s.exec(select(Job.model, func.min(Job.created_at)).where(queued).group_by(Job.model)):
                oldest.add_metric([model], (now - first).total_seconds())
            for model, status, n in s.exec(select(Job.model, Job.status, func.count()).group_by(Job.model, Job.status)):
                jobs.add_metric([model, status], n)
        yield from (depth, oldest, jobs)


REGISTRY.register(QueueCollector())
