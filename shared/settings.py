"""One settings class for the whole service, read from the environment (prefix ``SOUNDBOX_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOUNDBOX_", env_file=".env", extra="ignore")

    # Infrastructure
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/soundbox"
    redis_url: str = "redis://127.0.0.1:6379/0"
    storage_dir: Path = Path("var/storage")
    models_dir: Path = Field(
        Path("var/models"),
        description="Local checkpoints (<models_dir>/<checkpoint id>/) and the generated tiny catalog.",
    )

    # Models
    catalog: Literal["default", "tiny"] = "default"
    voices_dir: Path | None = Field(None, description="Extra Piper voices (*.onnx + *.onnx.json).")

    # Queue and worker
    device: str = Field("cpu", description="Worker device: cpu or cuda:N (set by `soundbox worker --device`).")
    max_attempts: int = Field(3, ge=1, le=10, description="Generation attempts per job (quality retries).")
    job_lease_seconds: int = Field(60, ge=5, description="A running job whose worker stops renewing this lease is recovered.")
    broker_visibility_timeout: int = Field(3600, ge=5, description="Seconds before an unacknowledged task is redelivered.")
    recovery_interval: int = Field(15, ge=1, description="How often a worker looks for jobs whose lease expired.")
    model_cache_size: int = Field(2, ge=1, description="Models a worker keeps loaded at once (LRU).")

    # Audio post-processing
    loudness_target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    loop_crossfade_seconds: float = 0.5

    # HTTP
    cors_origins: list[str] = []
    numba_cache_dir: Path = Path("var/cache/numba")

    @field_validator("storage_dir", "models_dir", "numba_cache_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
