"""The model memory manager: which models a worker holds on its device, and when to load,
warm up, evict or unload them, decided by the memory the device really has free.

Each catalog model moves through the seed's states::

    unloaded -> loading -> warming -> ready <-> generating
                                       ready -> unloading -> unloaded

- **Planning.** A model needs its catalog estimate (``ModelSpec.memory_gb``, plus
  ``item_memory_gb`` per further clip of a batch) until the manager has measured it; after a
  load and warm-up it plans with what it measured. Free memory comes from a probe: NVML on a
  GPU (system-wide, so other programs on the card count: an LLM server), else
  ``torch.cuda.mem_get_info``; host memory (psutil) on CPU. ``memory_margin_gb`` always stays
  free; ``memory_limit_gb`` optionally caps what this worker's models hold in all.
- **Eviction.** To make room, idle models (ready, no lease) are unloaded least recently used
  first. A model with a lease (generating) is never unloaded: leases are counted.
- **Waiting.** When nothing more can be evicted, a job waits up to ``memory_wait_seconds``
  (polling: other programs may free memory), then fails with :class:`InsufficientMemory`,
  whose message says how much was needed, how much is free and who holds the rest.
- **Idle unload.** :meth:`unload_idle` (called by the worker's background loop) unloads models
  unused for ``model_idle_seconds``.
- **Preload.** :meth:`preload` loads the configured models at start while the device has at
  least ``preload_min_free_gb`` free (the seed's rule: 5 GB free -> AudioGen).
- **Warm-up.** A freshly loaded model generates its ``warmup_durations`` (and runs the quality
  analyzer once) before it takes a job, so the first user job pays no one-off costs.
- **Out of memory.** :meth:`Lease.generate` catches a CUDA out-of-memory error, frees what it
  can (idle models, torch's cache) and retries once; a second one raises
  :class:`GenerationOutOfMemory` (the job fails with that message; the worker carries on).

Batching (#11) asks :meth:`MemoryManager.batch_fits` / :meth:`max_batch` before it groups jobs.
"""

from __future__ import annotations

import gc
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from shared.domain.catalog import GB, ModelSpec
from shared.settings import Settings
from worker import metrics
from worker.engines import engine_class, load_engine
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ProgressFn

log = structlog.get_logger()

Loader = Callable[[ModelSpec, Settings, str], Engine]
Warmer = Callable[[Engine], None]


class ModelState(StrEnum):
    unloaded = "unloaded"
    loading = "loading"
    warming = "warming"
    ready = "ready"
    generating = "generating"
    unloading = "unloading"


class InsufficientMemory(RuntimeError):
    """Nothing could make room for a model within the wait; the message says who holds what."""


class GenerationOutOfMemory(RuntimeError):
    """The device ran out of memory twice during one generation (after freeing what it could)."""


def gb(n: float | int | None) -> str:
    return "unknown" if n is None else f"{n / GB:.2f} GB"


# --- memory probes -------------------------------------------------------------------------------


class MemoryProbe(Protocol):
    """What the manager asks about its device. Tests inject their own."""

    def free_bytes(self) -> int:
        """Memory free on the device, system-wide (other programs' use counts)."""

    def total_bytes(self) -> int | None: ...

    def process_bytes(self) -> int:
        """Memory this process holds on the device now (for measuring a model's footprint)."""

    def reset_peak(self) -> None: ...

    def peak_bytes(self) -> int | None:
        """Most memory this process held since ``reset_peak`` (None: not tracked)."""

    def holders(self) -> list[str]:
        """Who else holds memory on the device, as short descriptions ("pid 123: 30.00 GB")."""

    def release_cache(self) -> None:
        """Give cached, unused memory back to the device (torch's caching allocator)."""


class HostProbe:
    """Host memory (psutil) for a worker on CPU."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()

    def free_bytes(self) -> int:
        return int(self._psutil.virtual_memory().available)

    def total_bytes(self) -> int | None:
        return int(self._psutil.virtual_memory().total)

    def process_bytes(self) -> int:
        return int(self._process.memory_info().rss)

    def reset_peak(self) -> None:
        pass

    def peak_bytes(self) -> int | None:
        return None  # the kernel's peak RSS cannot be reset per model

    def holders(self) -> list[str]:
        vm = self._psutil.virtual_memory()
        others = vm.total - vm.available - self.process_bytes()
        return [f"other processes on this host: {gb(max(others, 0))}"]

    def release_cache(self) -> None:
        gc.collect()


class CudaProbe:
    """One CUDA device: NVML for system-wide free memory and other processes (it sees programs
    outside this one, e.g. an LLM server), falling back to ``torch.cuda.mem_get_info``."""

    def __init__(self, device: str):
        import torch

        self._torch = torch
        self.index = int(device.split(":")[1]) if ":" in device else 0
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self._nvml_index())
        except Exception as exc:  # no NVML (driver library missing): torch's view only
            log.info("NVML unavailable; free memory from torch.cuda.mem_get_info", error=str(exc))
            self._nvml = None

    def _nvml_index(self) -> int:
        """NVML numbers all GPUs; torch only the visible ones. Map through CUDA_VISIBLE_DEVICES."""
        import os

        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        if visible and self.index < len(visible) and visible[self.index].isdigit():
            return int(visible[self.index])
        return self.index

    def free_bytes(self) -> int:
        if self._handle is not None:
            return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).free)
        return int(self._torch.cuda.mem_get_info(self.index)[0])

    def total_bytes(self) -> int | None:
        if self._handle is not None:
            return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).total)
        return int(self._torch.cuda.mem_get_info(self.index)[1])

    def process_bytes(self) -> int:
        return int(self._torch.cuda.memory_allocated(self.index))

    def reset_peak(self) -> None:
        self._torch.cuda.reset_peak_memory_stats(self.index)

    def peak_bytes(self) -> int | None:
        return int(self._torch.cuda.max_memory_allocated(self.index))

    def holders(self) -> list[str]:
        import os

        if self._handle is None:
            return []
        try:
            procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:
            return []
        out = []
        for p in procs:
            who = "this worker" if p.pid == os.getpid() else f"pid {p.pid}"
            out.append(f"{who}: {gb(p.usedGpuMemory) if p.usedGpuMemory is not None else 'unknown'}")
        return out

    def release_cache(self) -> None:
        gc.collect()
        self._torch.cuda.empty_cache()


def probe_for(device: str) -> MemoryProbe:
    return CudaProbe(device) if device.startswith("cuda") else HostProbe()


# --- warm-up -------------------------------------------------------------------------------------

WARMUP_SPEECH = "Warming up. This sentence is never stored."


def warm_up_engine(engine: Engine, batch_sizes: Sequence[int] = (1,), buckets: Sequence[float] = ()) -> None:
    """Generate the shapes the model will serve before any user job, then run the quality
    analyzer once, so no user job pays a first call:

    - every duration bucket up to the first warm-up duration (one generation window), one clip;
    - the first warm-up duration at every batch size calls are padded to;
    - each further warm-up duration (the windowed path: prompted windows), one clip.

    Speech: a sentence."""
    from shared.audio.quality import analyze

    spec = engine.spec
    durations = (spec.warmup_durations or (min(2.0, spec.max_duration),)) if spec.uses_duration else (0.0,)
    prompt = "warm-up" if spec.uses_duration else WARMUP_SPEECH
    first = durations[0]
    shorter = (
        [b for b in buckets if spec.min_duration <= b < first]
        if spec.uses_duration and not spec.fixed_durations
        else []
    )
    shapes = [(b, 1) for b in shorter]
    shapes += [(first, n) for n in sorted(set(batch_sizes) | {1})] + [(d, 1) for d in durations[1:]]
    for duration, n in shapes:
        clips = engine.generate([GenerationRequest(prompt, duration, seed=i) for i in range(n)])
    analyze(clips[0].samples, clips[0].sample_rate, spec.kind)


def warmup_batch_sizes(settings: Settings, device: str) -> list[int]:
    """The batch sizes a fresh model is warmed up at: the configured ones, else every batch shape up
    to the cap on a GPU (each new shape pays a one-off cost there) and 1 on CPU (none does)."""
    if settings.warmup_batch_sizes is not None:
        return list(settings.warmup_batch_sizes)
    if not device.startswith("cuda"):
        return [1]
    return [n for n in settings.batch_sizes if n <= settings.batch_max] or [1]


# --- the manager ---------------------------------------------------------------------------------


@dataclass
class ModelEntry:
    spec: ModelSpec
    state: ModelState = ModelState.unloaded
    engine: Engine | None = None
    footprint: int | None = None  # measured after load (process memory delta)
    peak: int | None = None  # most memory seen in warm-up or generation, weights included
    active: int = 0  # leases: generations running with it
    last_used: float = 0.0
    load_seconds: float | None = None
    warmup_seconds: float | None = None


class Lease:
    """A model held for generation; while any lease is open the model is not unloaded.

    Quacks like an :class:`Engine` for the pipeline (``spec``, ``sample_rate``, ``generate``),
    with the out-of-memory retry around ``generate``.
    """

    def __init__(self, manager: MemoryManager, entry: ModelEntry):
        self._manager, self._entry = manager, entry
        assert entry.engine is not None
        self.engine: Engine = entry.engine
        self.spec = entry.spec
        self._open = True

    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[GeneratedAudio]:
        try:
            return self.engine.generate(requests, progress)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            first = exc
        model = self.spec.id
        freed = self._manager.relieve(exclude=model)
        log.warning(
            "out of memory during generation; retrying once",
            model=model,
            clips=len(requests),
            freed=freed,
            error=str(first)[:200],
        )
        try:
            out = self.engine.generate(requests, progress)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            metrics.OOM.labels(model=model, outcome="failed").inc()
            self._manager.relieve(exclude=model)
            raise GenerationOutOfMemory(
                f"out of memory on {self._manager.device} generating {len(requests)} clip(s) with '{model}', "
                f"also after freeing {', '.join(freed) or 'cached memory'} and retrying; "
                f"{self._manager.memory_report()}"
            ) from exc
        metrics.OOM.labels(model=model, outcome="recovered").inc()
        return out

    def release(self) -> None:
        if self._open:
            self._open = False
            self._manager._release(self._entry)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) out-of-memory error."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - the worker always has torch
        pass
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


class MemoryManager:
    """The models of one worker on one device (each worker process owns one)."""

    def __init__(
        self,
        catalog: dict[str, ModelSpec],
        settings: Settings,
        device: str,
        *,
        probe: MemoryProbe | None = None,
        loader: Loader = load_engine,
        warmer: Warmer | bool | None = True,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
        poll_seconds: float = 1.0,
    ):
        self.catalog, self.settings, self.device = catalog, settings, device
        self.probe = probe if probe is not None else probe_for(device)
        self._loader = loader
        if warmer is True:
            sizes = warmup_batch_sizes(settings, device)
            buckets = settings.duration_buckets
            warmer = (lambda engine: warm_up_engine(engine, sizes, buckets)) if settings.warmup else None
        self._warmer: Warmer | None = warmer or None
        self._clock = clock
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self.margin = int(settings.memory_margin_gb * GB)
        self.limit = int(settings.memory_limit_gb * GB) if settings.memory_limit_gb else None
        self._entries = {model_id: ModelEntry(spec) for model_id, spec in catalog.items()}
        self._measured: dict[str, int] = {}  # model -> peak need measured earlier (kept across unloads)
        self._cond = threading.Condition(threading.RLock())
        self._load_lock = threading.Lock()  # one load at a time: each plans with the memory left by the last

    # --- planning --------------------------------------------------------------------------------

    def estimate(self, model_id: str, batch: int = 1) -> int:
        """Memory ``model_id`` needs loaded and generating ``batch`` clips at once (measured when
        known, else the catalog's estimate)."""
        spec = self._spec(model_id)
        base = self._measured.get(model_id) or spec.memory_bytes(1)
        return int(base + spec.item_memory_gb * GB * max(batch - 1, 0))

    def held_bytes(self) -> int:
        """What this worker's models hold (measured, else estimated)."""
        with self._cond:
            return sum(self._holding(e) for e in self._entries.values() if e.state != ModelState.unloaded)

    def _holding(self, e: ModelEntry) -> int:
        return max(e.footprint or 0, e.peak or 0) or e.spec.memory_bytes(1)

    def available(self) -> int:
        """Memory a new load may use now: free on the device minus the margin (and within the limit)."""
        free = self.probe.free_bytes() - self.margin
        if self.limit is not None:
            free = min(free, self.limit - self.held_bytes())
        return max(free, 0)

    def batch_fits(self, model_id: str, batch: int) -> bool:
        """Whether ``batch`` clips of ``model_id`` fit now (for the batching of #11). A loaded model
        needs only what the further clips add; an unloaded one its whole estimate (evictions not
        counted)."""
        with self._cond:
            e = self._entries[model_id]
            if e.state in (ModelState.ready, ModelState.generating):
                extra = self.estimate(model_id, batch) - self.estimate(model_id, 1)
                return extra <= self.available()
            return self.estimate(model_id, batch) <= self.available()

    def max_batch(self, model_id: str, limit: int = 64) -> int:
        """The largest batch of ``model_id`` that fits now (at least 1)."""
        best = 1
        for n in range(2, limit + 1):
            if not self.batch_fits(model_id, n):
                break
            best = n
        return best

    # --- leases ----------------------------------------------------------------------------------

    def lease(
        self, model_id: str, *, timeout: float | None = None, on_wait: Callable[[str], None] | None = None
    ) -> Lease:
        """Hold ``model_id`` for generation, loading (and warming) it first if needed.

        Waits up to ``timeout`` (default ``memory_wait_seconds``) for memory, then raises
        :class:`InsufficientMemory`. May raise ``ModelUnavailable`` (weights missing).
        ``on_wait`` is told once why the call waits.
        """
        entry = self._spec_entry(model_id)
        wait = self.settings.memory_wait_seconds if timeout is None else timeout
        deadline = self._clock() + wait
        waited_since: float | None = None
        with self._cond:
            while True:
                if entry.state in (ModelState.ready, ModelState.generating):
                    entry.active += 1
                    entry.state = ModelState.generating
                    entry.last_used = self._clock()
                    break
                if entry.state == ModelState.unloaded and self._load_lock.acquire(blocking=False):
                    need = self.estimate(model_id)
                    try:
                        room = self._make_room(need, exclude=model_id)
                    except BaseException:
                        self._load_lock.release()
                        raise
                    if room:
                        entry.state = ModelState.loading
                        break
                    self._load_lock.release()
                    if self._clock() >= deadline:
                        metrics.MEMORY_WAITS.labels(model=model_id, outcome="failed").inc()
                        raise InsufficientMemory(self._shortage(model_id, need, wait))
                    if waited_since is None:
                        waited_since = self._clock()
                        log.warning(
                            "waiting for memory",
                            model=model_id,
                            need=gb(need),
                            available=gb(self.available()),
                            wait_seconds=wait,
                        )
                        if on_wait:
                            on_wait(f"waiting for {gb(need)} of memory for '{model_id}'")
                # another thread loads, warms or unloads it, or holds the load lock; or memory is short
                self._cond.wait(self.poll_seconds)
        if waited_since is not None:
            metrics.MEMORY_WAITS.labels(model=model_id, outcome="got").inc()
        if entry.state == ModelState.loading:
            self._changed()
            try:
                self._load_and_warm(entry)
            finally:
                self._load_lock.release()
        self._changed()
        return Lease(self, entry)

    def _release(self, entry: ModelEntry) -> None:
        with self._cond:
            entry.active -= 1
            entry.last_used = self._clock()
            if entry.active == 0 and entry.state == ModelState.generating:
                entry.state = ModelState.ready
            self._cond.notify_all()
        self._changed()

    def _load_and_warm(self, entry: ModelEntry) -> None:
        """Load and warm ``entry`` (state loading); on success it leaves holding one lease."""
        spec = entry.spec
        try:
            engine_class(spec)  # import its libraries first: their memory is not the model's
            self.probe.release_cache()
            before = self.probe.process_bytes()
            self.probe.reset_peak()
            started = time.perf_counter()
            engine = self._loader(spec, self.settings, self.device)
            entry.load_seconds = time.perf_counter() - started
            entry.footprint = max(self.probe.process_bytes() - before, 0)
            metrics.LOAD_SECONDS.labels(model=spec.id).observe(entry.load_seconds)
            with self._cond:
                entry.engine, entry.state = engine, ModelState.warming
            self._changed()
            if self._warmer is not None:
                started = time.perf_counter()
                self._warmer(engine)
                entry.warmup_seconds = time.perf_counter() - started
                metrics.WARMUP_SECONDS.labels(model=spec.id).observe(entry.warmup_seconds)
            peak = self.probe.peak_bytes()
            if peak is not None:
                entry.peak = max(peak - before, entry.footprint or 0)
            measured = max(entry.peak or 0, entry.footprint or 0)
            if measured > 0:
                self._measured[spec.id] = measured
        except BaseException as exc:
            metrics.MODEL_LOADS.labels(model=spec.id, outcome="failed").inc()
            with self._cond:
                engine_or_none, entry.engine = entry.engine, None
                entry.state, entry.footprint, entry.peak = ModelState.unloaded, None, None
                self._cond.notify_all()
            if engine_or_none is not None:
                engine_or_none.close()
            self.probe.release_cache()
            self._changed()
            log.warning("model load failed", model=spec.id, error=str(exc)[:300])
            raise
        metrics.MODEL_LOADS.labels(model=spec.id, outcome="loaded").inc()
        with self._cond:
            entry.state, entry.active, entry.last_used = ModelState.generating, 1, self._clock()
            self._cond.notify_all()
        log.info(
            "model ready",
            model=spec.id,
            device=self.device,
            load_seconds=round(entry.load_seconds or 0, 3),
            warmup_seconds=round(entry.warmup_seconds or 0, 3),
            footprint=gb(entry.footprint),
            peak=gb(entry.peak),
        )

    # --- eviction and unloading ------------------------------------------------------------------

    def _idle_lru(self, exclude: str | None) -> list[ModelEntry]:
        idle = [
            e for e in self._entries.values() if e.state == ModelState.ready and e.active == 0 and e.spec.id != exclude
        ]
        return sorted(idle, key=lambda e: e.last_used)

    def _make_room(self, need: int, exclude: str) -> bool:
        """Evict idle models, least recently used first, until ``need`` fits. Under the lock."""
        while self.available() < need:
            idle = self._idle_lru(exclude)
            if not idle:
                return False
            self._unload(idle[0], "memory")
        return True

    def _unload(self, entry: ModelEntry, reason: str) -> None:
        """Unload an idle entry (the caller holds the lock and checked it is idle)."""
        assert entry.active == 0
        entry.state = ModelState.unloading
        engine, entry.engine = entry.engine, None
        self._changed()
        try:
            if engine is not None:
                engine.close()
        finally:
            del engine
            self.probe.release_cache()
            entry.state, entry.footprint, entry.peak = ModelState.unloaded, None, None
            metrics.EVICTIONS.labels(model=entry.spec.id, reason=reason).inc()
            log.info("model unloaded", model=entry.spec.id, reason=reason)
            self._cond.notify_all()

    def unload(self, model_id: str) -> bool:
        """Unload ``model_id`` if it is idle; False when it is generating or not loaded."""
        with self._cond:
            entry = self._entries[model_id]
            if entry.state != ModelState.ready or entry.active:
                return False
            self._unload(entry, "request")
        self._changed()
        return True

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload models unused for ``model_idle_seconds``. Returns their ids."""
        now = self._clock() if now is None else now
        done = []
        with self._cond:
            for entry in self._idle_lru(None):
                if now - entry.last_used >= self.settings.model_idle_seconds:
                    self._unload(entry, "idle")
                    done.append(entry.spec.id)
        if done:
            self._changed()
        return done

    def relieve(self, exclude: str) -> list[str]:
        """After an out-of-memory error: unload every idle model but ``exclude`` and empty caches."""
        with self._cond:
            idle = self._idle_lru(exclude)
            for entry in idle:
                self._unload(entry, "oom")
        self.probe.release_cache()
        self._changed()
        return [e.spec.id for e in idle]

    def close(self) -> None:
        """Unload everything idle (worker shutdown)."""
        with self._cond:
            for entry in self._idle_lru(None):
                self._unload(entry, "shutdown")

    # --- start-up --------------------------------------------------------------------------------

    def preload(self, serves: Sequence[str] | None = None) -> list[str]:
        """Load (and warm) the configured preload models this worker serves, in order, while at
        least ``preload_min_free_gb`` is free and each fits. Returns the ids loaded."""
        wanted = [m for m in self.settings.preload_models if m in self._entries and (serves is None or m in serves)]
        loaded = []
        for model_id in wanted:
            free = self.probe.free_bytes()
            if free < self.settings.preload_min_free_gb * GB:
                log.info(
                    "not preloading: too little free memory",
                    model=model_id,
                    free=gb(free),
                    needs=f"{self.settings.preload_min_free_gb:g} GB",
                )
                break
            try:
                with self.lease(model_id, timeout=0):
                    pass
            except InsufficientMemory as exc:
                log.info("not preloading", model=model_id, reason=str(exc))
                continue
            except Exception as exc:  # weights missing etc.: jobs for it will say so
                log.warning("preload failed", model=model_id, error=str(exc)[:300])
                continue
            loaded.append(model_id)
        return loaded

    # --- reporting -------------------------------------------------------------------------------

    def state(self, model_id: str) -> ModelState:
        return self._entries[model_id].state

    def loaded(self) -> list[str]:
        """Ids of the models in memory (ready or generating), least recently used first."""
        with self._cond:
            held = [e for e in self._entries.values() if e.state in (ModelState.ready, ModelState.generating)]
            return [e.spec.id for e in sorted(held, key=lambda e: e.last_used)]

    @property
    def warming(self) -> bool:
        with self._cond:
            return any(e.state in (ModelState.loading, ModelState.warming) for e in self._entries.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """Each model not unloaded: state, footprint, peak, leases, idle time (for heartbeats,
        /v1/models and metrics)."""
        now = self._clock()
        with self._cond:
            out = []
            for e in self._entries.values():
                if e.state == ModelState.unloaded:
                    continue
                out.append(
                    {
                        "model": e.spec.id,
                        "state": e.state.value,
                        "footprint_bytes": e.footprint,
                        "peak_bytes": e.peak,
                        "estimate_bytes": self.estimate(e.spec.id),
                        "active": e.active,
                        "idle_seconds": round(now - e.last_used, 1) if e.active == 0 and e.last_used else None,
                        "load_seconds": e.load_seconds,
                        "warmup_seconds": e.warmup_seconds,
                    }
                )
            return out

    def memory(self) -> dict[str, Any]:
        """The device's memory as the manager sees it."""
        try:
            free, total = self.probe.free_bytes(), self.probe.total_bytes()
        except Exception:  # a probe hiccup must not break a heartbeat
            free, total = None, None
        return {
            "device": self.device,
            "free_bytes": free,
            "total_bytes": total,
            "margin_bytes": self.margin,
            "limit_bytes": self.limit,
            "held_bytes": self.held_bytes(),
        }

    def memory_report(self) -> str:
        """Who holds the device's memory, for error messages."""
        with self._cond:
            mine = [
                f"{e.spec.id} ({e.state.value}, {gb(self._holding(e))})"
                for e in self._entries.values()
                if e.state != ModelState.unloaded
            ]
        free = self.probe.free_bytes()
        parts = [
            f"{gb(free)} free on {self.device} (margin {gb(self.margin)}"
            + (f", this worker's limit {gb(self.limit)}" if self.limit else "")
            + ")",
            "this worker holds " + (", ".join(mine) if mine else "no models"),
        ]
        others = [h for h in self.probe.holders() if not h.startswith("this worker")]
        if others:
            parts.append("also on the device: " + ", ".join(others))
        return "; ".join(parts)

    def _shortage(self, model_id: str, need: int, waited: float) -> str:
        return (
            f"not enough memory to load '{model_id}': it needs {gb(need)} plus the {gb(self.margin)} margin, "
            f"waited {waited:g} s; {self.memory_report()}"
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception as exc:  # telling others must never break generation
                log.warning("model state report failed", error=str(exc))

    def _spec(self, model_id: str) -> ModelSpec:
        return self._spec_entry(model_id).spec

    def _spec_entry(self, model_id: str) -> ModelEntry:
        try:
            return self._entries[model_id]
        except KeyError:
            raise KeyError(f"unknown model {model_id!r} (catalog: {', '.join(self.catalog)})") from None


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
