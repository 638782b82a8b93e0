"""One settings class for the whole service, read from the environment (prefix ``SOUNDBOX_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.tiers import DEFAULT_TIERS, TierLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOUNDBOX_", env_file=".env", extra="ignore")

    # Infrastructure
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/soundbox"
    redis_url: str = "redis://127.0.0.1:6379/0"
    storage_dir: Path = Path("var/storage")
    # Object store: shared/infra/storage.py (local folder) or shared/infra/s3store.py (S3)
    storage_url: str = Field(
        "",
        description="s3://bucket[/prefix] for an S3-compatible store; unset or "
        "file:///path for the local folder (storage_dir when unset).",
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, ...); AWS_ENDPOINT_URL works too.")
    s3_presign_endpoint_url: str | None = Field(
        None, description="Endpoint clients reach presigned URLs at, when it differs from s3_endpoint_url."
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_max_attempts: int = Field(5, ge=1, le=20, description="Tries per S3 call on transient errors (botocore).")
    s3_multipart_threshold: int = Field(
        8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Objects this large or larger go up as multipart uploads."
    )
    storage_serve: Literal["stream", "redirect"] = Field(
        "stream", description="stream: the API sends the bytes; redirect: 307 to a presigned URL (S3 only)."
    )
    storage_presign_seconds: int = Field(300, ge=1, le=7 * 86400, description="Lifetime of a presigned URL.")

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, v: str) -> str:
        v = v.strip()
        if v and not (v.startswith("file://") or (v.startswith("s3://") and len(v.split("/")[2]) >= 3)):
            raise ValueError("must be s3://bucket[/prefix] or file:///path")
        return v

    models_dir: Path = Field(
        Path("var/models"),
        description="Local checkpoints (<models_dir>/<checkpoint id>/) and the generated tiny catalog.",
    )

    # Models
    catalog: Literal["default", "tiny"] = "default"
    voices_dir: Path | None = Field(None, description="Extra Piper voices (*.onnx + *.onnx.json).")

    # Speech (POST /v1/audio/speech in the API; Piper in the worker)
    speech_workers: int = Field(2, ge=1, description="API threads synthesizing speech at once (the bounded pool).")
    speech_max_pending: int = Field(
        8, ge=0, description="Speech requests admitted beyond speech_workers; more get 503."
    )
    speech_threads: int = Field(1, ge=0, description="ONNX Runtime threads per synthesis (0: one per core).")
    speech_voice_cache_size: int = Field(4, ge=1, description="Piper voices a process keeps loaded (LRU).")

    # Queue and worker
    device: str = Field("cpu", description="Worker device: cpu or cuda:N (set by `soundbox worker --device`).")
    max_attempts: int = Field(3, ge=1, le=10, description="Generation attempts per job (quality retries).")
    job_lease_seconds: int = Field(
        60, ge=5, description="A running job whose worker stops renewing this lease is recovered."
    )
    broker_visibility_timeout: int = Field(
        3600, ge=5, description="Seconds before an unacknowledged task is redelivered."
    )
    reconcile_grace_seconds: float = Field(
        60.0,
        gt=0,
        description="A job queued this long whose broker message "
        "is gone (Redis restarted empty, a task failed before its claim) "
        "is sent again by the workers' sweep.",
    )
    recovery_interval: int = Field(15, ge=1, description="How often a worker looks for jobs whose lease expired.")

    # Model memory (worker/memory.py): what a worker may load beside other programs on its device
    memory_margin_gb: float = Field(2.0, ge=0, description="Memory (GB) always left free on the device when loading.")
    memory_limit_gb: float | None = Field(
        None,
        gt=0,
        description="Most memory (GB) this worker's models may hold in all (unset: whatever the device has free).",
    )
    memory_wait_seconds: float = Field(300.0, ge=0, description="How long a job waits for memory before it fails.")
    model_idle_seconds: float = Field(300.0, gt=0, description="A model unused this long is unloaded.")
    preload_models: list[str] = Field(
        default_factory=lambda: ["audio"],
        description="Models a worker loads at start (those it serves), in order, "
        "while at least preload_min_free_gb is free.",
    )
    preload_min_free_gb: float = Field(5.0, ge=0, description="Free memory (GB) needed to preload at start.")
    warmup: bool = Field(True, description="A freshly loaded model generates its warm-up durations before jobs.")
    warmup_batch_sizes: list[int] | None = Field(
        None,
        description="Batch sizes a fresh model is warmed up at, each at every warm-up duration "
        "(unset: every batch size up to batch_max on a GPU, where each new shape pays a one-off cost; "
        "1 on CPU, where none does).",
    )

    # Dynamic batching (worker/batcher.py)
    batch_max: int = Field(16, ge=1, le=256, description="Most clips one generation call makes (the batch cap).")
    batch_sizes: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16],
        description="Batch shapes: a batch is padded up to the next of these (so every call has a warmed shape).",
    )
    batch_window_seconds: float = Field(
        0.05,
        ge=0,
        le=1,
        description="A batch short of the cap waits this long once for more compatible jobs (a lone job's most delay).",
    )
    duration_buckets: list[float] = Field(
        default_factory=lambda: [1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0],
        description="Generation lengths (s): a clip is generated at the next of these and trimmed, so jobs of "
        "nearby durations share batches and shapes.",
    )
    postprocess_threads: int = Field(
        1,
        ge=1,
        le=16,
        description="Threads post-processing clips (quality check, loudness, encoding, store) "
        "beside the next batch's generation.",
    )
    magnet_checkpoint: str = Field(
        "facebook/magnet-small-10secs", description="MAGNeT checkpoint of the default catalog (10 s or 30 s variant)."
    )

    # Accounts, limits and fairness
    allow_anonymous: bool = Field(False, description="Requests without an API key act as one shared free account.")
    tiers: dict[str, TierLimits] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    max_queued_jobs: int = Field(100, ge=1, description="Global cap on queued jobs; beyond it submissions get 503.")
    rate_limits: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"generate": (30, 60), "read": (600, 60), "speech": (60, 60), "admin": (120, 60)},
        description="Per key and route class: (requests, per seconds), a token bucket refilled smoothly.",
    )
    aging_seconds: float = Field(
        30.0, gt=0, description="Each this many seconds of waiting raise a job's priority by one."
    )
    affinity_max_run: int = Field(
        50, ge=0, description="Batches in a row one task may serve from the database before it returns to the broker."
    )
    worker_metrics_port: int = Field(0, ge=0, le=65535, description="Port of a worker's /metrics (0: off).")
    metrics_token: str | None = Field(None, description="Bearer token for /metrics (admin keys work too).")
    library_requires_key: bool = Field(
        False,
        description="Whether reading public and unlisted sounds (and "
        "GET /v1/library) needs an API key; off: anyone may listen.",
    )

    # Telling clients: webhooks, live events, idempotent submits
    public_url: str = Field(
        "",
        description="Base URL clients reach the API at (https://sounds.example.com); "
        "makes result URLs in webhook bodies absolute. Unset: relative URLs.",
    )
    webhook_allowlist: str = Field(
        "",
        description="Comma-separated host names, addresses or CIDR ranges that "
        "webhooks may reach although not public (on-premises receivers).",
    )
    webhook_retry_schedule: str = Field(
        "5,300,1800,7200,18000,36000,36000",
        description="Seconds before each retry of a failed webhook (comma-separated); the first try is immediate. "
        "Each delay gets ±10 % jitter; a longer Retry-After wins.",
    )
    webhook_timeout: float = Field(15.0, gt=0, le=120, description="Seconds one webhook try may take in all.")
    webhook_secret_grace_seconds: int = Field(
        86400, ge=0, description="After a rotation the previous webhook secret signs too, for this long."
    )
    webhook_poll_interval: float = Field(
        1.0, gt=0, le=60, description="How often a webhook worker looks for due retries."
    )
    events_ttl_seconds: int = Field(
        86400, ge=60, description="How long a job's event history is kept for GET /v1/jobs/{id}/events replays."
    )
    idempotency_ttl_seconds: int = Field(86400, ge=60, description="How long an Idempotency-Key is remembered.")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        try:
            delays = [float(x) for x in v.split(",") if x.strip()]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,300,1800") from None
        if any(d < 0 for d in delays):
            raise ValueError("delays cannot be negative")
        return ",".join(f"{d:g}" for d in delays)

    @field_validator("batch_sizes", "warmup_batch_sizes", "duration_buckets")
    @classmethod
    def _ascending_positive(cls, v: list | None) -> list | None:
        if v is None:
            return v
        if not v or any(x <= 0 for x in v):
            raise ValueError("must be a non-empty list of positive numbers")
        return sorted(set(v))

    @property
    def webhook_retry_delays(self) -> list[float]:
        return [float(x) for x in self.webhook_retry_schedule.split(",") if x]

    # Audio post-processing
    loudness_target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    loop_crossfade_seconds: float = 0.5
    quality_thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Quality analyzer overrides per kind ("music", "sfx", "speech" or "*" for all), JSON: '
        '{"*": {"silence_db": -55}, "sfx": {"hiss_ratio": 0.8}}; see shared/audio/quality.py.',
    )

    # HTTP
    cors_origins: list[str] = []
    # Load and faults (api/resilience.py, shared/infra/db.py)
    max_body_bytes: int = Field(1_000_000, ge=0, description="Request bodies larger than this get 413 (0: no limit).")
    api_max_in_flight: int = Field(
        32,
        ge=0,
        description="Requests one API process works on at once (0: no limit). Twice the async pool: a "
        "request is on a connection or next in line for one, and rarely waits here (a wait costs CPU).",
    )
    api_max_queued: int = Field(
        256, ge=0, description="Requests waiting for a slot beyond those; more get 503 at once."
    )
    api_queue_wait: float = Field(1.0, ge=0, description="Seconds a request may wait for a slot before a 503.")
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long an API process remembers a valid key "
        "(a revocation elsewhere applies within this; 0: look up every request).",
    )
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connections a process keeps open.")
    db_max_overflow: int = Field(5, ge=0, description="Connections a process may open beyond db_pool_size.")
    db_async_pool_size: int = Field(
        16,
        ge=1,
        description="PostgreSQL connections an API process keeps for its async routes (submit, auth, job reads).",
    )
    db_async_max_overflow: int = Field(
        0, ge=0, description="Async connections an API process may open beyond those (closed after 10 idle minutes)."
    )
    limits_sweep_seconds: float = Field(
        30.0, gt=0, description="How often the Redis limit counters are rebuilt from PostgreSQL (drift heals)."
    )
    db_pool_timeout: float = Field(3.0, gt=0, description="Seconds to wait for a pooled connection before a 503.")
    db_connect_timeout: int = Field(3, ge=1, description="Seconds to wait for PostgreSQL to accept a connection.")
    numba_cache_dir: Path = Path("var/cache/numba")

    @field_validator("storage_dir", "models_dir", "numba_cache_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
