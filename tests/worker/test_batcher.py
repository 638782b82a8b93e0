"""The batching policy (worker/batcher.py) on plain data: buckets, shapes, the cap, who leads and
joins the next batch; and which shapes a fresh model is warmed up at."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from shared.domain.catalog import get_catalog
from shared.domain.params import JobParams
from shared.settings import Settings
from worker.batcher import BatchKey, Sources, cap_for, duration_bucket, key_for, next_batch, shape_bucket
from worker.engines.base import Engine, GeneratedAudio
from worker.memory import warm_up_engine, warmup_batch_sizes

SETTINGS = Settings(catalog="tiny")
BUCKETS = SETTINGS.duration_buckets


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(0.5, 1.0), (1.0, 1.0), (1.0000000001, 1.0), (1.2, 2.0), (9.9, 10.0), (31, 45.0), (130, 130)],
)
def test_a_duration_rounds_up_to_its_bucket(seconds, bucket):
    assert duration_bucket(seconds, BUCKETS) == bucket


@pytest.mark.parametrize(("n", "shape"), [(1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (16, 16), (17, 17)])
def test_a_batch_pads_up_to_the_next_size(n, shape):
    assert shape_bucket(n, SETTINGS.batch_sizes) == shape


@pytest.mark.parametrize(("cap", "fits", "expected"), [(16, 64, 16), (16, 12, 8), (16, 1, 1), (12, 64, 8), (4, 3, 2)])
def test_the_cap_is_lowered_to_what_memory_allows_and_to_a_full_shape(cap, fits, expected):
    assert cap_for(SETTINGS.model_copy(update={"batch_max": cap}), fits) == expected


def test_jobs_are_compatible_by_model_bucket_and_controls():
    catalog = get_catalog(SETTINGS)

    def key(model="music", **fields):
        return key_for(catalog[model], JobParams(**{"prompt": "p", "duration": 4.0, "seed": 1, **fields}), SETTINGS)

    assert key() == key(duration=4.9, seed=9, prompt="other") == BatchKey("music", 5.0, "{}")
    assert key(duration=5.1) != key()
    assert key(loopable=True).seconds > 4.0  # the crossfade is generated too
    assert key(temperature=0.7) != key()
    assert key("magnet", duration=10.0).seconds == 10.0
    assert key("voice", duration=None, voice=None).seconds == 0.0


@dataclass
class J:
    name: str
    key: BatchKey
    priority: int
    age: int = 0  # larger: older

    @property
    def rank(self) -> tuple[int, float]:
        return (self.priority, float(self.age))


A, B = BatchKey("music", 2.0, "{}"), BatchKey("music", 10.0, "{}")


@dataclass
class Queue:
    jobs: list[J]
    cap: int = 16
    taken: list[list[str]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    arriving: list[J] = field(default_factory=list)  # appear during the gathering window

    def sources(self, held: list[J]) -> Sources[J, J]:
        def claim(qs: list[J]) -> list[J]:
            self.taken.append([q.name for q in qs])
            for q in qs:
                self.jobs.remove(q)
            return qs

        return Sources(
            held=held,
            queued=lambda: sorted(self.jobs, key=lambda j: j.rank, reverse=True),
            claim=claim,
            cap=lambda m: self.cap,
        )

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.jobs += self.arriving


def names(batch: list[J]) -> list[str]:
    return [j.name for j in batch]


def test_the_best_queued_job_leads_and_compatible_ones_join_up_to_the_cap():
    q = Queue([J("a1", A, 5, 3), J("b1", B, 9), J("b2", B, 1), J("a2", A, 5, 2), J("b3", B, 4)], cap=2)
    assert names(next_batch(q.sources([]), window=0.05, sleep=q.sleep)) == ["b1", "b3"]
    assert q.sleeps == []  # a full batch does not wait


def test_a_held_retry_leads_when_it_ranks_highest_and_keeps_its_place_otherwise():
    held = [J("retry", A, 6)]
    q = Queue([J("a1", A, 5), J("b1", B, 5)])
    assert names(next_batch(q.sources(held), window=0, sleep=q.sleep)) == ["retry", "a1"]
    assert held == []
    held = [J("retry", A, 3)]
    q = Queue([J("b1", B, 7)])
    assert names(next_batch(q.sources(held), window=0, sleep=q.sleep)) == ["b1"]
    assert names(held) == ["retry"]  # still held, for the next round
    held = [J("retry", A, 7)]
    q = Queue([J("b1", B, 7)])
    assert names(next_batch(q.sources(held), window=0, sleep=q.sleep)) == ["retry"]  # a tie: the retry


def test_a_short_batch_waits_the_window_once_for_latecomers():
    q = Queue([J("a1", A, 5)], arriving=[J("a2", A, 5), J("b1", B, 9)])
    assert names(next_batch(q.sources([]), window=0.05, sleep=q.sleep)) == ["a1", "a2"]
    assert q.sleeps == [0.05]


def test_nothing_waiting_gives_an_empty_batch_and_held_only_skips_the_queue():
    q = Queue([])
    assert next_batch(q.sources([]), window=0.05, sleep=q.sleep) == [] and q.sleeps == []
    q = Queue([J("a1", A, 9)])
    assert names(next_batch(q.sources([J("h", B, 1)]), window=0.05, sleep=q.sleep, claim_queued=False)) == ["h"]
    assert q.taken == []


class Shapes(Engine):
    """Records the shape of each call (clips, seconds); makes silence. Warm-up plans only."""

    def __init__(self, spec):
        super().__init__(spec, "cpu")
        self.calls: list[tuple[int, float]] = []

    @property
    def sample_rate(self) -> int:
        return 8000

    def generate(self, requests, progress=None):
        self.calls.append((len(requests), requests[0].duration))
        return [GeneratedAudio(np.zeros((1, max(1, round(r.duration * 8000))), np.float32), 8000) for r in requests]


def test_warm_up_generates_each_shorter_bucket_every_padded_shape_of_one_window_and_the_windowed_path():
    spec = get_catalog(SETTINGS)["music"]  # warm-up durations: one window, then past it
    engine = Shapes(spec)
    warm_up_engine(engine, [1, 2, 4, 8, 16], BUCKETS)
    first, windowed = spec.warmup_durations
    shorter = [b for b in BUCKETS if b < first]
    assert shorter and engine.calls == [
        *((1, b) for b in shorter),
        *((n, first) for n in (1, 2, 4, 8, 16)),
        (1, windowed),
    ]
    magnet = Shapes(get_catalog(SETTINGS)["magnet"])  # one fixed length: nothing shorter to warm
    warm_up_engine(magnet, [1, 2], BUCKETS)
    assert magnet.calls == [(1, 10.0), (2, 10.0)]


def test_warmed_batch_sizes_all_shapes_on_a_gpu_one_on_cpu_or_as_configured():
    assert warmup_batch_sizes(SETTINGS, "cpu") == [1]
    assert warmup_batch_sizes(SETTINGS, "cuda:0") == [1, 2, 4, 8, 16]
    assert warmup_batch_sizes(SETTINGS.model_copy(update={"batch_max": 4}), "cuda:1") == [1, 2, 4]
    assert warmup_batch_sizes(SETTINGS.model_copy(update={"warmup_batch_sizes": [1, 8]}), "cpu") == [1, 8]
