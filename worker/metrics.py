"""Prometheus metrics of one worker process, served on its own port (SOUNDBOX_WORKER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry()
JOB_SECONDS = Histogram(
    "soundbox_job_duration_seconds",
    "Job run time, claim to terminal state",
    ["model", "outcome"],
    registry=REGISTRY,
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
ATTEMPTS = Counter("soundbox_generation_attempts_total", "Generation attempts", ["model"], registry=REGISTRY)
RETRIES = Counter(
    "soundbox_quality_retries_total", "Attempts after a failed quality check", ["model"], registry=REGISTRY
)
QUALITY = Histogram(
    "soundbox_quality_score",
    "Quality score of each attempt",
    ["model"],
    registry=REGISTRY,
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
)

LOAD_SECONDS = Histogram(
    "soundbox_model_load_seconds",
    "Time to load a model",
    ["model"],
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)
WARMUP_SECONDS = Histogram(
    "soundbox_model_warmup_seconds",
    "Time a freshly loaded model spends warming up",
    ["model"],
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
MODEL_LOADS = Counter("soundbox_model_loads_total", "Model loads", ["model", "outcome"], registry=REGISTRY)
EVICTIONS = Counter(
    "soundbox_model_unloads_total",
    "Models unloaded, by reason (memory, idle, oom, request, shutdown)",
    ["model", "reason"],
    registry=REGISTRY,
)
OOM = Counter(
    "soundbox_generation_oom_total",
    "Out-of-memory errors in generation (recovered by a retry or failed)",
    ["model", "outcome"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "soundbox_batch_jobs",
    "Jobs per generation call",
    ["model"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
    registry=REGISTRY,
)
BATCH_PADDING = Counter(
    "soundbox_batch_padding_clips_total",
    "Clips generated only to pad a batch to a warmed shape",
    ["model"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "soundbox_batch_seconds",
    "Seconds one generation call took",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
    registry=REGISTRY,
)
MEMORY_WAITS = Counter(
    "soundbox_memory_waits_total",
    "Jobs that waited for memory (got it or failed)",
    ["model", "outcome"],
    registry=REGISTRY,
)


class ModelCollector:
    """Model states, footprints and device memory from the memory manager, read at scrape time."""

    def __init__(self, manager, device: str):
        self.manager, self.device = manager, device

    def collect(self):
        loaded = GaugeMetricFamily(
            "soundbox_model_loaded", "1 when the model is loaded on this worker", labels=["model"]
        )
        state = GaugeMetricFamily("soundbox_model_state", "1 for the model's current state", labels=["model", "state"])
        footprint = GaugeMetricFamily(
            "soundbox_model_footprint_bytes", "Memory a model holds, measured after load", labels=["model"]
        )
        peak = GaugeMetricFamily("soundbox_model_peak_bytes", "Most memory seen while it warmed up", labels=["model"])
        active = GaugeMetricFamily(
            "soundbox_model_active_generations", "Generations running with the model", labels=["model"]
        )
        for m in self.manager.snapshot():
            if m["state"] in ("ready", "generating"):
                loaded.add_metric([m["model"]], 1)
            state.add_metric([m["model"], m["state"]], 1)
            active.add_metric([m["model"]], m["active"])
            if m["footprint_bytes"] is not None:
                footprint.add_metric([m["model"]], m["footprint_bytes"])
            if m["peak_bytes"] is not None:
                peak.add_metric([m["model"]], m["peak_bytes"])
        yield from (loaded, state, footprint, peak, active)
        memory = self.manager.memory()
        free = GaugeMetricFamily(
            "soundbox_device_memory_free_bytes", "Free memory on the worker's device (system-wide)", labels=["device"]
        )
        held = GaugeMetricFamily("soundbox_worker_models_bytes", "Memory this worker's models hold", labels=["device"])
        if memory["free_bytes"] is not None:
            free.add_metric([self.device], memory["free_bytes"])
        held.add_metric([self.device], memory["held_bytes"])
        yield from (free, held)
        if self.device.startswith("cuda"):
            yield from gpu_memory(self.device)


def gpu_memory(device: str):
    """Used and total memory of this worker's GPU (NVML), plus what torch holds."""
    used = GaugeMetricFamily("soundbox_gpu_memory_used_bytes", "GPU memory in use", labels=["device"])
    total = GaugeMetricFamily("soundbox_gpu_memory_total_bytes", "GPU memory", labels=["device"])
    held = GaugeMetricFamily("soundbox_torch_memory_allocated_bytes", "Memory held by torch", labels=["device"])
    index = int(device.split(":")[1]) if ":" in device else 0
    try:
        import pynvml

        pynvml.nvmlInit()
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
        used.add_metric([device], info.used)
        total.add_metric([device], info.total)
    except Exception:  # no NVML on this host: report what torch knows only
        pass
    import torch

    held.add_metric([device], torch.cuda.memory_allocated(index))
    return [used, total, held]


def serve(port: int, manager, device: str) -> None:
    REGISTRY.register(ModelCollector(manager, device))
    start_http_server(port, registry=REGISTRY)
