"""Prometheus metrics of one worker process, served on its own port (SOUNDBOX_WORKER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry()
JOB_SECONDS = Histogram("soundbox_job_duration_seconds", "Job run time, claim to terminal state",
                        ["model", "outcome"], registry=REGISTRY,
                        buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
ATTEMPTS = Counter("soundbox_generation_attempts_total", "Generation attempts", ["model"], registry=REGISTRY)
RETRIES = Counter("soundbox_quality_retries_total", "Attempts after a failed quality check", ["model"],
                  registry=REGISTRY)
QUALITY = Histogram("soundbox_quality_score", "Quality score of each attempt", ["model"], registry=REGISTRY,
                    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100))


class ModelCollector:
    """Loaded models and GPU memory, read at scrape time."""

    def __init__(self, cache, device: str):
        self.cache, self.device = cache, device

    def collect(self):
        loaded = GaugeMetricFamily("soundbox_model_loaded", "1 when the model is loaded on this worker",
                                   labels=["model"])
        for model in self.cache.loaded():
            loaded.add_metric([model], 1)
        yield loaded
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


def serve(port: int, cache, device: str) -> None:
    REGISTRY.register(ModelCollector(cache, device))
    start_http_server(port, registry=REGISTRY)
