"""ModelCache: on-demand loading, LRU eviction with close(), thread safety.

A fake loader stands in for load_engine here only; the real loader is exercised in test_engines.
"""

from __future__ import annotations

import threading
import time
from typing import Sequence

import numpy as np
import pytest

from shared.domain.catalog import get_catalog
from shared.settings import Settings
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ModelUnavailable
from worker.model_cache import ModelCache


class FakeEngine(Engine):
    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.closed = False

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    def generate(self, requests: Sequence[GenerationRequest], progress=None) -> list[GeneratedAudio]:
        return [GeneratedAudio(np.zeros((1, 1), np.float32), self.sample_rate) for _ in requests]

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.loads: list[str] = []

    def __call__(self, spec, settings, device) -> FakeEngine:
        time.sleep(self.delay)
        self.loads.append(spec.id)
        return FakeEngine(spec, device)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(catalog="tiny", models_dir=tmp_path, model_cache_size=2)


def make_cache(settings, loader, capacity=None) -> ModelCache:
    return ModelCache(get_catalog(settings), settings, "cpu", capacity=capacity, loader=loader)


def test_loads_on_demand_once(settings):
    loader = FakeLoader()
    cache = make_cache(settings, loader)
    assert cache.loaded() == []
    engine = cache.get("music")
    assert cache.get("music") is engine and engine.device == "cpu" and engine.spec.id == "music"
    assert loader.loads == ["music"] and cache.loaded() == ["music"]


def test_lru_eviction_closes_least_recently_used(settings):
    loader = FakeLoader()
    cache = make_cache(settings, loader)  # capacity from settings.model_cache_size = 2
    music, audio = cache.get("music"), cache.get("audio")
    cache.get("music")  # audio is now the least recently used
    voice = cache.get("voice")
    assert audio.closed and not music.closed and not voice.closed
    assert cache.loaded() == ["music", "voice"]
    assert cache.get("audio") is not audio and loader.loads == ["music", "audio", "voice", "audio"]
    assert music.closed and cache.loaded() == ["voice", "audio"]


def test_explicit_capacity_overrides_settings(settings):
    cache = make_cache(settings, FakeLoader(), capacity=1)
    first = cache.get("music")
    cache.get("magnet")
    assert first.closed and cache.loaded() == ["magnet"]
    with pytest.raises(ValueError):
        make_cache(settings, FakeLoader(), capacity=0)


def test_unload_and_clear(settings):
    cache = make_cache(settings, FakeLoader())
    music, voice = cache.get("music"), cache.get("voice")
    cache.unload("music")
    cache.unload("music")  # not loaded: nothing happens
    assert music.closed and not voice.closed and cache.loaded() == ["voice"]
    cache.clear()
    assert voice.closed and cache.loaded() == []


def test_unknown_model(settings):
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        make_cache(settings, FakeLoader()).get("nope")


def test_failed_load_leaves_cache_consistent(settings):
    def failing(spec, settings, device):
        raise ModelUnavailable(f"{spec.checkpoint} missing")

    cache = make_cache(settings, failing)
    with pytest.raises(ModelUnavailable):
        cache.get("music")
    assert cache.loaded() == []


def test_concurrent_gets_load_once(settings):
    loader = FakeLoader(delay=0.05)
    cache = make_cache(settings, loader)
    results: list[Engine] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("audio"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loader.loads == ["audio"] and len(results) == 8 and all(r is results[0] for r in results)
