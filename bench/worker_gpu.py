"""The GPU worker's model lifecycle, measured: load, warm-up, the first user call after warm-up
against the steady state, and the first call without warm-up (what a user paid before), for
10 s and 60 s clips, with peak memory.

    .venv/bin/python bench/worker_gpu.py [--device cpu|cuda:N] [--models music,audio,magnet]
                                         [--durations 10,60] [--repeat 2] [--real-arch] [--json]

Each model runs in fresh processes (a first call is only a first call once per process): one
through the worker's memory manager with warm-up, one without. Durations are clamped to what a
model makes (AudioGen up to 30 s, MAGNeT its fixed length). CPU: the tiny catalog. ``--real-arch``
(on a GPU): the real MusicGen-small / AudioGen-medium / MAGNeT-small architectures with random
weights (the hub is unreachable; per-step arithmetic is the same as with the real checkpoints),
built from the configs of audiocraft's config/ tree with T5 replaced by a 768-wide lookup
conditioner, as ../shared/reference/audiocraft-offline.md and gpu-baseline.md describe.
Peak memory: torch's peak allocation on a GPU; the process's peak resident set on CPU.
Target: first user call within 1.2x of steady. With ``--batch 16 --real-arch`` on a GPU, the clips/min
column is the batching target (16 concurrent MusicGen-small 10 s >= 100 clips/min; stock serial 7.1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "var" / "cache" / "numba"))

# Real architectures (audiocraft config/ tree): LM and EnCodec shapes per family.
REAL_LM = {
    "musicgen": {"dim": 1024, "num_heads": 16, "num_layers": 24},  # musicgen-small, 422M with cross-attention
    "audiogen": {"dim": 1536, "num_heads": 24, "num_layers": 48},  # audiogen-medium, 1.5B
    "magnet": {"dim": 1024, "num_heads": 16, "num_layers": 24},  # magnet-small-10secs
}
REAL_RATIOS = {"musicgen": [8, 5, 4, 4], "audiogen": [8, 5, 4, 2], "magnet": [8, 5, 4, 4]}


def real_arch_configs(family: str) -> tuple[dict, dict]:
    """(compression config, LM config) of the real architecture of ``family``."""
    from worker.engines import tiny

    comp = tiny.compression_config(family)
    comp["seanet"].update(dimension=128, n_filters=64, lstm=2, ratios=REAL_RATIOS[family])
    comp["rvq"].update(bins=2048, n_q=4)
    lm = tiny.lm_config(family)
    lm["transformer_lm"].update(card=2048, **REAL_LM[family])
    lm["conditioners"]["description"]["lut"].update(n_bins=1024, dim=768)
    return comp, lm


def real_arch_loader(spec, settings, device):
    """An engine of ``spec``'s family whose model is the real architecture with random weights."""
    import torch
    from audiocraft.models import AudioGen, MAGNeT, MusicGen, builders
    from omegaconf import OmegaConf

    from worker.engines import engine_class

    base = engine_class(spec)
    family = spec.family
    classes = {"musicgen": MusicGen, "audiogen": AudioGen, "magnet": MAGNeT}

    class RealArch(base):  # type: ignore[misc, valid-type]
        def load_pretrained(self, name: str) -> Any:
            comp_cfg, lm_cfg = (OmegaConf.create(c) for c in real_arch_configs(family))
            # as audiocraft's loaders do: the device in the config, the LM in fp16 on a GPU
            comp_cfg.device = lm_cfg.device = str(device)
            lm_cfg.dtype = "float32" if device == "cpu" else "float16"
            torch.manual_seed(0)
            compression = builders.get_compression_model(comp_cfg).to(device).eval()
            if family == "magnet":
                lm_cfg.transformer_lm.compression_model_framerate = int(compression.frame_rate)
                lm_cfg.transformer_lm.segment_duration = lm_cfg.dataset.segment_duration
                lm_cfg.transformer_lm.span_len = lm_cfg.masking.span_len
            lm = builders.get_lm_model(lm_cfg).to(device).eval()
            lm.cfg = lm_cfg  # type: ignore[assignment]
            return classes[family](name=f"real-arch-{family}", compression_model=compression, lm=lm)

    return RealArch(spec, settings, device)


def _peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one(args: argparse.Namespace) -> dict[str, Any]:
    """Inside a fresh process: one model, with or without warm-up."""
    from shared.domain.catalog import get_catalog
    from shared.settings import Settings
    from worker.engines import load_engine
    from worker.engines.base import GenerationRequest
    from worker.memory import MemoryManager

    settings = Settings(catalog="tiny", device=args.device, warmup=not args.cold, models_dir=ROOT / "var" / "models")
    catalog = get_catalog(settings)
    loader = load_engine
    if args.real_arch:
        real = get_catalog(settings.model_copy(update={"catalog": "default"}))
        catalog = {k: dataclasses.replace(real[k], checkpoint=catalog[k].checkpoint) for k in catalog}
        loader = real_arch_loader
    manager = MemoryManager(catalog, settings, args.device, loader=loader)
    spec = catalog[args.one]
    with manager.lease(spec.id):
        pass
    [entry] = manager.snapshot()
    out: dict[str, Any] = {
        "model": spec.id,
        "device": args.device,
        "real_arch": args.real_arch,
        "warmed": not args.cold,
        "load_s": entry["load_seconds"],
        "warmup_s": entry["warmup_seconds"] or 0.0,
        "clips": [],
    }
    seen: set[float] = set()
    for wanted in args.durations:
        duration = spec.fixed_durations[0] if spec.fixed_durations else min(wanted, spec.max_duration)
        if duration in seen:
            continue
        seen.add(duration)
        times = []
        with manager.lease(spec.id) as lease:
            for i in range(1 + (0 if args.cold else args.repeat)):
                start = time.perf_counter()
                n = args.batch
                lease.generate(
                    [GenerationRequest("bench: warm synth pads", duration, seed=i * n + j) for j in range(n)]
                )
                times.append(time.perf_counter() - start)
        out["clips"].append(
            {
                "duration": duration,
                "first_s": times[0],
                "steady_s": statistics.median(times[1:]) if len(times) > 1 else None,
            }
        )
        if args.cold:
            break  # the cold first call is only a first call once
    out["peak_bytes"] = _peak_bytes(args.device)
    return out


def run_child(args: argparse.Namespace, model: str, cold: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        model,
        "--device",
        args.device,
        "--repeat",
        str(args.repeat),
        "--durations",
        ",".join(f"{d:g}" for d in args.durations),
        "--batch",
        str(args.batch),
    ]
    if cold:
        cmd.append("--cold")
    if args.real_arch:
        cmd.append("--real-arch")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{model}{' (cold)' if cold else ''} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="music,audio,magnet")
    parser.add_argument("--durations", default="10,60", type=lambda s: [float(x) for x in s.split(",") if x])
    parser.add_argument("--repeat", type=int, default=2, help="steady-state calls after the first")
    parser.add_argument(
        "--batch", type=int, default=1, help="clips per call (a shape the worker pads to: 1, 2, 4, 8, 16)"
    )
    parser.add_argument("--real-arch", action="store_true", help="real architectures, random weights (GPU)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    rows = []
    for model in [m for m in args.models.split(",") if m]:
        warm, cold = run_child(args, model, cold=False), run_child(args, model, cold=True)
        rows.append({"warm": warm, "cold": cold})
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        return
    kind = "real architectures, random weights" if args.real_arch else "tiny catalog"
    print(
        f"device {args.device}, {kind}, {args.batch} clip(s) per call; "
        f"steady = median of {args.repeat} calls after the first\n"
    )
    print(
        "| model | clip s | load s | warm-up s | first call after warm-up s | steady s | first/steady "
        "| clips/min steady | first call without warm-up s | peak memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        warm, cold = row["warm"], row["cold"]
        for i, clip in enumerate(warm["clips"]):
            ratio = clip["first_s"] / clip["steady_s"] if clip["steady_s"] else float("nan")
            cold_first = f"{cold['clips'][0]['first_s']:.2f}" if i == 0 and cold["clips"] else ""
            print(
                f"| {warm['model']} | {clip['duration']:g} | {warm['load_s']:.2f} | {warm['warmup_s']:.2f} "
                f"| {clip['first_s']:.2f} | {clip['steady_s']:.2f} | {ratio:.2f}x "
                f"| {60 * args.batch / clip['steady_s']:.1f} | {cold_first} "
                f"| {warm['peak_bytes'] / 1e9:.2f} GB |"
            )


if __name__ == "__main__":
    main()
