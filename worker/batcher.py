"""Dynamic batching: which waiting jobs generate together, and at what shape.

Jobs are *compatible* when they share a model, a duration bucket and their sampling controls
(audiocraft's generation parameters are set per call). A batch is generated at its bucket's
length (each clip trimmed to its own duration afterwards) and padded to the next of a few batch
sizes, so every call has a shape the model was warmed up with and no user pays a first call.

``next_batch`` is the whole policy: the highest-priority waiting job leads (a quality retry
this worker holds, or the best queued job), compatible jobs join it up to the cap (the
configured cap, lowered to what free memory allows), and a batch short of the cap waits the
gathering window once for latecomers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from shared.audio.loop import loop_crossfade_seconds
from shared.domain.catalog import ModelSpec
from shared.domain.params import JobParams
from shared.settings import Settings


@dataclass(frozen=True)
class BatchKey:
    """What the jobs of one batch share."""

    model: str
    seconds: float  # generation length: the duration bucket (0 for speech)
    controls: str  # the sampling controls, canonical JSON


def generation_seconds(params: JobParams, settings: Settings) -> float:
    """The audio a job needs generated: its duration, plus the crossfade when it is made loopable."""
    duration = params.duration or 0.0
    if params.loopable:
        duration += loop_crossfade_seconds(duration, settings.loop_crossfade_seconds)
    return duration


def duration_bucket(seconds: float, buckets: Sequence[float]) -> float:
    """The smallest bucket that holds ``seconds`` (``seconds`` itself past the last one)."""
    for bucket in buckets:
        if bucket >= seconds - 1e-9:
            return float(bucket)
    return seconds


def shape_bucket(n: int, sizes: Sequence[int]) -> int:
    """The batch size a batch of ``n`` clips is padded to: the next of ``sizes`` (``n`` past them)."""
    for size in sizes:
        if size >= n:
            return size
    return n


def key_for(spec: ModelSpec, params: JobParams, settings: Settings) -> BatchKey:
    controls = json.dumps(params.controls(), sort_keys=True)
    if not spec.uses_duration:
        return BatchKey(spec.id, 0.0, controls)
    seconds = generation_seconds(params, settings)
    if spec.fixed_durations:  # MAGNeT makes its checkpoint's length, nothing else
        return BatchKey(spec.id, seconds, controls)
    return BatchKey(spec.id, duration_bucket(seconds, settings.duration_buckets), controls)


def cap_for(settings: Settings, fits: int) -> int:
    """The batch cap: the configured one, lowered to what memory allows (``fits`` clips) and then
    to a batch size whose padded shape still fits."""
    cap = max(1, min(settings.batch_max, fits))
    sizes = [s for s in settings.batch_sizes if s <= cap]
    return sizes[-1] if sizes and shape_bucket(cap, settings.batch_sizes) > cap else cap


class Batchable(Protocol):
    """What the batcher needs of a job, held or queued."""

    @property
    def key(self) -> BatchKey: ...

    @property
    def rank(self) -> tuple[int, float]: ...  # (priority, -created) : larger is served first


J = TypeVar("J", bound=Batchable)  # a held (claimed) job
Q = TypeVar("Q", bound=Batchable)  # a queued job, not yet claimed


@dataclass
class Sources(Generic[J, Q]):
    """Where the batcher finds jobs: the retries this worker holds, and the database's queue."""

    held: list[J]  # claimed jobs waiting for (another) generation; taken from this list
    queued: Callable[[], list[Q]]  # queued jobs in serving order
    claim: Callable[[list[Q]], list[J]]  # claim these queued jobs; returns those this worker got
    cap: Callable[[str], int]  # the batch cap for a model now


def next_batch(
    src: Sources[J, Q], *, window: float, sleep: Callable[[float], None] = time.sleep, claim_queued: bool = True
) -> list[J]:
    """The next batch: led by the highest-priority waiting job, filled with compatible ones.
    Empty when nothing waits. ``claim_queued=False`` serves held jobs only."""
    queued = src.queued() if claim_queued else []
    best_held = max(src.held, key=lambda j: j.rank, default=None)
    heads: list[Batchable] = [j for j in (best_held, queued[0] if queued else None) if j is not None]
    if not heads:
        return []
    key = max(heads, key=lambda j: j.rank).key  # a held retry wins a tie: it has waited longer
    cap = src.cap(key.model)

    batch = sorted((j for j in src.held if j.key == key), key=lambda j: j.rank, reverse=True)[:cap]
    for j in batch:
        src.held.remove(j)
    if claim_queued and len(batch) < cap:
        batch += src.claim([q for q in queued if q.key == key][: cap - len(batch)])
        if len(batch) < cap and window > 0:
            sleep(window)  # latecomers: requests sent together arrive a few milliseconds apart
            batch += src.claim([q for q in src.queued() if q.key == key][: cap - len(batch)])
    return batch


def ranked(priority: int, created_at: datetime) -> tuple[int, float]:
    return (priority, -created_at.timestamp())
