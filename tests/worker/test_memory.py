"""The model memory manager with real tiny engines (real audiocraft and Piper code) and an
injected memory probe standing in for a GPU: a device of a given size, other programs on it,
and the models this worker loaded on it.

What is simulated is only what cannot exist here: the device's memory. Loads, warm-ups,
generations and closes are the real engines'.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from shared.domain.catalog import GB, get_catalog
from shared.settings import Settings
from worker.engines import load_engine
from worker.engines.base import GenerationRequest, ModelUnavailable
from worker.engines.musicgen import MusicGenEngine
from worker.memory import (
    GenerationOutOfMemory,
    InsufficientMemory,
    MemoryManager,
    ModelState,
    warm_up_engine,
)


class SimulatedDevice:
    """A memory probe for a device of ``total_gb`` where other programs hold ``others_gb`` and
    each model this worker loaded holds its size (registered by :meth:`loader`)."""

    def __init__(self, total_gb: float, others_gb: float = 0.0, sizes_gb: dict[str, float] | None = None):
        self.total = int(total_gb * GB)
        self.others = int(others_gb * GB)
        self.sizes = {k: int(v * GB) for k, v in (sizes_gb or {}).items()}
        self.held: dict[str, int] = {}
        self.loads: list[str] = []
        self.closes: list[str] = []
        self.cache_releases = 0

    # MemoryProbe
    def free_bytes(self) -> int:
        return self.total - self.others - sum(self.held.values())

    def total_bytes(self) -> int:
        return self.total

    def process_bytes(self) -> int:
        return sum(self.held.values())

    def reset_peak(self) -> None:
        pass

    def peak_bytes(self) -> None:
        return None

    def holders(self) -> list[str]:
        return [f"pid 4242: {self.others / GB:.2f} GB"] if self.others else []

    def release_cache(self) -> None:
        self.cache_releases += 1

    def loader(self, engine_factory=load_engine):
        """A loader that builds the real engine and puts its size on the device (until closed)."""

        def load(spec, settings, device):
            engine = engine_factory(spec, settings, "cpu")
            self.held[spec.id] = self.sizes.get(spec.id, spec.memory_bytes(1))
            self.loads.append(spec.id)
            close = engine.close

            def closing() -> None:
                self.held.pop(spec.id, None)
                self.closes.append(spec.id)
                close()

            engine.close = closing
            return engine

        return load


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def settings_for(models_dir, **overrides) -> Settings:
    values = {
        "catalog": "tiny",
        "models_dir": models_dir,
        "memory_margin_gb": 0.1,
        "memory_wait_seconds": 0.5,
        "warmup": False,
        **overrides,
    }
    return Settings(**values)


def catalog_with(settings: Settings, gb_each: dict[str, float]) -> dict:
    """The tiny catalog with the memory estimates of a test scenario."""
    catalog = get_catalog(settings)
    return {
        k: dataclasses.replace(v, memory_gb=gb_each.get(k, v.memory_gb), item_memory_gb=0.05)
        for k, v in catalog.items()
    }


def manager_for(
    models_dir,
    device: SimulatedDevice,
    sizes: dict[str, float],
    *,
    engine_factory=load_engine,
    warmer=None,
    clock=time.monotonic,
    **overrides,
) -> MemoryManager:
    settings = settings_for(models_dir, **overrides)
    return MemoryManager(
        catalog_with(settings, sizes),
        settings,
        "cuda:0",
        probe=device,
        loader=device.loader(engine_factory),
        warmer=warmer,
        clock=clock,
        poll_seconds=0.05,
    )


SIZES = {"music": 0.3, "audio": 0.3, "magnet": 0.3, "voice": 0.3}


def use(manager: MemoryManager, model_id: str) -> None:
    with manager.lease(model_id) as lease:
        [clip] = lease.generate([GenerationRequest("a short test", 0.5, seed=1)])
        assert clip.samples.shape[1] > 0


# --- eviction ------------------------------------------------------------------------------------


def test_loads_on_demand_and_records_the_footprint(models_dir):
    device = SimulatedDevice(2.0, sizes_gb={"music": 0.42})
    manager = manager_for(models_dir, device, {"music": 0.3})
    assert manager.state("music") == ModelState.unloaded and manager.snapshot() == []
    use(manager, "music")
    use(manager, "music")
    assert device.loads == ["music"]
    [entry] = manager.snapshot()
    assert entry["model"] == "music" and entry["state"] == "ready" and entry["active"] == 0
    assert entry["footprint_bytes"] == int(0.42 * GB)  # measured after the load, not the catalog's 0.3
    assert manager.estimate("music") == int(0.42 * GB)  # and planned with from now on
    assert manager.estimate("music", batch=3) == int(0.42 * GB + 2 * 0.05 * GB)


def test_evicts_least_recently_used_idle_models(models_dir):
    device = SimulatedDevice(1.05)  # room for three 0.3 GB models beside the 0.1 GB margin
    manager = manager_for(models_dir, device, SIZES)
    for model in ("music", "audio", "magnet"):
        use(manager, model)
    use(manager, "music")  # audio is now the least recently used
    use(manager, "voice")
    assert device.closes == ["audio"]
    assert sorted(manager.loaded()) == ["magnet", "music", "voice"]
    assert manager.state("audio") == ModelState.unloaded
    use(manager, "audio")  # magnet is the least recently used now
    assert device.closes == ["audio", "magnet"] and manager.loaded() == ["music", "voice", "audio"]


def test_never_unloads_a_generating_model(models_dir):
    device = SimulatedDevice(1.05)
    manager = manager_for(models_dir, device, SIZES)
    for model in ("music", "audio", "magnet"):
        use(manager, model)
    with manager.lease("music") as held:  # music is generating: the oldest, but not idle
        assert manager.state("music") == ModelState.generating
        assert not manager.unload("music")
        assert manager.unload_idle(now=time.monotonic() + 10_000) == ["audio", "magnet"]
        use(manager, "voice")
        assert "music" not in device.closes and held.engine.model is not None
        [clip] = held.generate([GenerationRequest("still here", 0.5, seed=2)])
        assert np.isfinite(clip.samples).all()
    assert manager.state("music") == ModelState.ready


def test_concurrent_leases_load_once_and_count(models_dir):
    device = SimulatedDevice(2.0)
    manager = manager_for(models_dir, device, SIZES)
    leases, errors = [], []

    def take() -> None:
        try:
            leases.append(manager.lease("audio"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and device.loads == ["audio"] and len({id(x.engine) for x in leases}) == 1
    assert manager.snapshot()[0]["active"] == 4
    for lease in leases[:3]:
        lease.release()
    assert manager.state("audio") == ModelState.generating  # one lease still open
    leases[3].release()
    leases[3].release()  # a second release of the same lease changes nothing
    assert manager.state("audio") == ModelState.ready and manager.snapshot()[0]["active"] == 0


# --- waiting for memory --------------------------------------------------------------------------


def test_waits_a_bounded_time_then_fails_naming_need_and_holders(models_dir):
    device = SimulatedDevice(1.0, others_gb=0.5)  # an LLM server holds half the card
    manager = manager_for(models_dir, device, SIZES)
    with manager.lease("music"):  # 0.3 GB, generating: cannot be evicted
        told: list[str] = []
        with pytest.raises(InsufficientMemory) as caught:
            manager.lease("audio", on_wait=told.append)
    message = str(caught.value)
    assert "'audio'" in message and "needs 0.30 GB" in message and "margin 0.10 GB" in message
    assert "waited 0.5 s" in message and "0.20 GB free on cuda:0" in message
    assert "this worker holds music (generating, 0.30 GB)" in message and "pid 4242: 0.50 GB" in message
    assert told == ["waiting for 0.30 GB of memory for 'audio'"]
    assert manager.state("audio") == ModelState.unloaded and "audio" not in device.loads
    use(manager, "music")  # the manager carries on


def test_a_waiting_job_gets_the_memory_a_finished_generation_frees(models_dir):
    device = SimulatedDevice(0.65)  # one 0.3 GB model beside the margin, not two
    manager = manager_for(models_dir, device, SIZES, memory_wait_seconds=60)
    lease = manager.lease("music")
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(manager.lease("voice").engine.spec.id))
    waiter.start()
    time.sleep(0.3)
    assert not got and manager.state("voice") == ModelState.unloaded  # waiting: music is generating
    lease.release()  # music idle: it may be evicted for voice now
    waiter.join(30)
    assert got == ["voice"] and device.closes == ["music"]


def test_memory_limit_caps_what_the_worker_holds(models_dir):
    device = SimulatedDevice(80.0)  # plenty free on the card, but the operator allows 0.7 GB
    manager = manager_for(models_dir, device, SIZES, memory_limit_gb=0.7)
    use(manager, "music")
    use(manager, "audio")
    use(manager, "magnet")
    assert device.closes == ["music"] and sorted(manager.loaded()) == ["audio", "magnet"]
    assert manager.memory()["limit_bytes"] == int(0.7 * GB)


def test_batch_estimates_for_batching(models_dir):
    device = SimulatedDevice(1.02, others_gb=0.3)  # 0.62 GB usable
    manager = manager_for(models_dir, device, SIZES)
    # unloaded: the whole model and its clips must fit: 0.3 + 6 x 0.05 <= 0.62 < 0.3 + 7 x 0.05
    assert manager.batch_fits("music", 7) and not manager.batch_fits("music", 8)
    use(manager, "music")
    # loaded: only what further clips add counts: 0.32 GB left, 0.05 GB per further clip
    assert manager.batch_fits("music", 7) and not manager.batch_fits("music", 8)
    assert manager.max_batch("music") == 7
    device.others = 0  # the other program exits: 0.62 GB left for clips
    assert manager.max_batch("music") == 13


def test_failed_load_leaves_the_model_unloaded(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = Settings(catalog="default", models_dir=tmp_path / "models", warmup=False)
    device = SimulatedDevice(20.0)
    manager = MemoryManager(get_catalog(settings), settings, "cuda:0", probe=device, loader=device.loader())
    with pytest.raises(ModelUnavailable):
        manager.lease("music")
    assert manager.state("music") == ModelState.unloaded and manager.snapshot() == [] and device.held == {}


# --- idle unload ---------------------------------------------------------------------------------


def test_idle_models_unload_after_the_timeout(models_dir):
    now = [1000.0]
    device = SimulatedDevice(4.0)
    manager = manager_for(models_dir, device, SIZES, clock=lambda: now[0], model_idle_seconds=300)
    use(manager, "music")
    now[0] += 100
    use(manager, "voice")
    now[0] += 250  # music idle 350 s, voice 250 s
    assert manager.unload_idle() == ["music"]
    assert manager.loaded() == ["voice"] and device.closes == ["music"]
    with manager.lease("voice"):
        now[0] += 1000
        assert manager.unload_idle() == []  # generating, however long ago it started
    now[0] += 299
    assert manager.unload_idle() == []
    now[0] += 1
    assert manager.unload_idle() == ["voice"] and manager.loaded() == []


# --- preload and warm-up -------------------------------------------------------------------------


def test_preload_follows_free_memory(models_dir):
    enough = SimulatedDevice(8.0, others_gb=2.5)  # 5.5 GB free: the seed's rule preloads AudioGen
    manager = manager_for(models_dir, enough, SIZES)
    assert manager.preload() == ["audio"] and manager.loaded() == ["audio"]

    short = SimulatedDevice(8.0, others_gb=3.5)  # 4.5 GB free
    manager = manager_for(models_dir, short, SIZES)
    assert manager.preload() == [] and short.loads == []

    serves_music_only = SimulatedDevice(8.0)
    manager = manager_for(models_dir, serves_music_only, SIZES)
    assert manager.preload(serves=["music"]) == []  # audio is not its queue

    configured = SimulatedDevice(8.0)
    manager = manager_for(models_dir, configured, SIZES, preload_models=["music", "voice"], preload_min_free_gb=1)
    assert manager.preload(serves=["music", "voice"]) == ["music", "voice"]
    assert manager.state("music") == ModelState.ready


def test_fresh_model_warms_up_before_the_first_lease(models_dir):
    device = SimulatedDevice(4.0)
    seen: list[tuple[str, str]] = []
    warmed: list[str] = []

    def warmer(engine) -> None:
        seen.append((engine.spec.id, manager.state(engine.spec.id).value))
        warm_up_engine(engine)  # the real warm-up: its duration buckets and the quality analyzer
        warmed.append(engine.spec.id)

    manager = manager_for(models_dir, device, SIZES, warmer=warmer)
    states: list[list[dict]] = []
    manager.on_change = lambda: states.append(manager.snapshot())
    with manager.lease("music") as lease:
        assert warmed == ["music"]  # before the lease was handed out
        lease.generate([GenerationRequest("first user job", 1.0, seed=3)])
    use(manager, "music")
    assert warmed == ["music"] and seen == [("music", "warming")]
    reported = [s[0]["state"] for s in states if s]
    assert reported[:3] == ["loading", "warming", "generating"] and reported[-1] == "ready"
    entry = manager.snapshot()[0]
    assert entry["load_seconds"] > 0 and entry["warmup_seconds"] > 0


# --- out of memory during generation ------------------------------------------------------------


class OomOnceMusicGen(MusicGenEngine):
    """The real MusicGen engine, whose first ``failures`` generations run out of CUDA memory."""

    failures = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def generate(self, requests, progress=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().generate(requests, progress)


class OomAlwaysMusicGen(OomOnceMusicGen):
    failures = 10


def factory(cls):
    return lambda spec, settings, device: (
        cls(spec, settings, device) if spec.id == "music" else load_engine(spec, settings, device)
    )


def test_oom_frees_idle_models_and_retries_once(models_dir):
    device = SimulatedDevice(4.0)
    manager = manager_for(models_dir, device, SIZES, engine_factory=factory(OomOnceMusicGen))
    use(manager, "audio")
    with manager.lease("music") as lease:
        [clip] = lease.generate([GenerationRequest("after a retry", 1.0, seed=4)])
        assert clip.samples.shape == (1, 32000) and lease.engine.calls == 2
    assert device.closes == ["audio"] and device.cache_releases > 0  # the idle model made room
    assert manager.state("music") == ModelState.ready


def test_second_oom_fails_clearly_and_the_manager_carries_on(models_dir):
    device = SimulatedDevice(4.0, others_gb=1.0)
    manager = manager_for(models_dir, device, SIZES, engine_factory=factory(OomAlwaysMusicGen))
    use(manager, "voice")
    with manager.lease("music") as lease, pytest.raises(GenerationOutOfMemory) as caught:
        lease.generate([GenerationRequest("too big", 1.0, seed=5)])
    message = str(caught.value)
    assert "out of memory on cuda:0 generating 1 clip(s) with 'music'" in message
    assert "after freeing voice and retrying" in message and "pid 4242: 1.00 GB" in message
    assert lease.engine.calls == 2 and manager.state("music") == ModelState.ready
    use(manager, "audio")  # other models still load and generate
