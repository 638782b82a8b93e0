"""Code shared by the three audiocraft engines (MusicGen, AudioGen, MAGNeT).

Each engine loads its model with the library's own ``get_pretrained`` from a local directory:
the tiny catalog's generated checkpoints, an operator-placed ``<models_dir>/<hub id>``, or a
Hugging Face hub cache snapshot (loaded offline). A missing checkpoint raises
``ModelUnavailable`` at once, naming what to download and where to put it.
"""

from __future__ import annotations

import gc
import math
import os
import threading
from abc import abstractmethod
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from shared.domain.catalog import AUDIOCRAFT_FILES, ModelSpec, hub_cache_dir, local_checkpoint_dir
from shared.settings import Settings
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ModelUnavailable, ProgressFn

# --- attention: serve audiocraft's xformers path with torch SDPA --------------------------------


def _sdpa_memory_efficient_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_bias: Any = None,
    p: float = 0.0,
    scale: float | None = None,
    *,
    op: Any = None,
    output_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``xformers.ops.memory_efficient_attention`` computed by ``scaled_dot_product_attention``.

    Layout [B, T, H, D] in and out (SDPA wants [B, H, T, D]). ``attn_bias`` is None, an additive
    tensor bias broadcastable to [B, H, Tq, Tk] (MAGNeT's restricted-context mask), or an
    xformers ``AttentionBias``: ``LowerTriangularMask`` (the causal mask of MusicGen/AudioGen)
    maps to ``is_causal``; any other one is materialized to a tensor. ``op`` (an xformers
    kernel choice) has no meaning here and is ignored.
    """
    from xformers.ops import AttentionBias, LowerTriangularMask

    q, k, v = (x.transpose(1, 2) for x in (query, key, value))
    mask, causal = None, False
    if isinstance(attn_bias, LowerTriangularMask):
        causal = True  # top-left aligned in both libraries
    elif isinstance(attn_bias, AttentionBias):
        shape = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        mask = attn_bias.materialize(shape, dtype=q.dtype, device=q.device)
    elif attn_bias is not None:
        mask = attn_bias.to(q.dtype)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal, scale=scale
    )
    out = out.transpose(1, 2)
    return out if output_dtype is None else out.to(output_dtype)


class _SdpaOps:
    """Stands in for the ``xformers.ops`` module inside audiocraft's transformer; only
    ``memory_efficient_attention`` differs, everything else is the real xformers.ops."""

    memory_efficient_attention = staticmethod(_sdpa_memory_efficient_attention)

    def __init__(self, ops: Any):
        self._ops = ops

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ops, name)


def route_memory_efficient_attention_to_sdpa() -> None:
    """Select audiocraft's 'xformers' attention backend and serve it with torch SDPA. Idempotent.

    Why: MAGNeT restricts the self-attention of codebooks > 0 to a local window. audiocraft
    applies (and trims the align-8 padding of) that mask only on its xformers path; its 'torch'
    path passes ``is_causal`` instead and drops the mask. Official MAGNeT checkpoints select
    the xformers backend on load anyway, but xformers' kernels do not load beside a torch they
    were not built for (CPU here, or a newer CUDA torch). So audiocraft keeps the xformers path
    and SDPA does the arithmetic, on CPU and GPU alike.

    The backend is a process-wide setting read at every forward pass, so it is applied once,
    before any audiocraft model is loaded: a model generating while another loads never sees
    it change. For the causal MusicGen/AudioGen models both paths compute the same thing.
    """
    from audiocraft.modules import transformer

    if not isinstance(transformer.ops, _SdpaOps):
        transformer.ops = _SdpaOps(transformer.ops)
    transformer.set_efficient_attention_backend("xformers")


# --- sampling: each clip of a batch from its own random generator --------------------------------

_ROW_GENERATORS: ContextVar[list[torch.Generator] | None] = ContextVar("soundbox_row_generators", default=None)


def _multinomial_per_row(
    input: torch.Tensor, num_samples: int, replacement: bool = False, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """audiocraft's ``utils.multinomial`` drawing row ``b`` of the batch from generator ``b``.

    Every random draw of MusicGen, AudioGen and MAGNeT at inference goes through this function
    (plain, top-k and top-p sampling), with the batch on the first dimension. With per-row
    generators set (inside :meth:`AudiocraftEngine.generate`), each clip consumes only its own
    generator's stream, so its tokens do not depend on the other clips of the batch or on their
    number. Anything else falls through to the library's function.
    """
    generators = _ROW_GENERATORS.get()
    if generators is None or generator is not None or input.dim() < 2 or input.shape[0] != len(generators):
        return _LIBRARY_MULTINOMIAL(input, num_samples, replacement, generator=generator)
    card = input.shape[-1]
    rows = [
        torch.multinomial(input[b].reshape(-1, card), num_samples, replacement, generator=g).reshape(
            *input.shape[1:-1], -1
        )
        for b, g in enumerate(generators)
    ]
    return torch.stack(rows)


_LIBRARY_MULTINOMIAL: Any = None


def route_sampling_to_row_generators() -> None:
    """Install :func:`_multinomial_per_row` in audiocraft (idempotent). ``lm.py``, ``lm_magnet.py``
    and ``sample_top_k``/``sample_top_p`` all look the function up on ``audiocraft.utils.utils``
    at call time, so replacing that attribute covers every sampling path."""
    global _LIBRARY_MULTINOMIAL
    from audiocraft.utils import utils

    if utils.multinomial is not _multinomial_per_row:
        _LIBRARY_MULTINOMIAL = utils.multinomial
        utils.multinomial = _multinomial_per_row


@contextmanager
def _row_generators(seeds: Sequence[int], device: str) -> Iterator[None]:
    generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
    token = _ROW_GENERATORS.set(generators)
    try:
        yield
    finally:
        _ROW_GENERATORS.reset(token)


# --- checkpoints ---------------------------------------------------------------------------------


def resolve_checkpoint(spec: ModelSpec, settings: Settings, references: Sequence[str] = ()) -> str:
    """A local directory holding ``spec``'s checkpoint, for ``get_pretrained``.

    Tiny catalog: the generated checkpoints (created on first use). Otherwise, in order:
    ``<models_dir>/<hub id>``, then the Hugging Face hub cache. ``references`` names the other
    hub repositories the official checkpoint loads (EnCodec, T5), for the error message.
    """
    if settings.catalog == "tiny":
        from worker.engines.tiny import ensure_tiny_checkpoints

        ensure_tiny_checkpoints(settings.models_dir / "tiny")
        return spec.checkpoint
    local = local_checkpoint_dir(spec, settings)
    if all((local / f).is_file() for f in AUDIOCRAFT_FILES):
        return str(local)
    snapshot = _hub_snapshot(spec.checkpoint)
    if snapshot is not None:
        return str(snapshot)
    raise ModelUnavailable(
        f"{spec.checkpoint} is not on this machine: {_download_hint(spec.checkpoint, local, references)}"
    )


def _hub_snapshot(repo_id: str) -> Path | None:
    """The hub cache snapshot directory holding both checkpoint files, if any (no network)."""
    from huggingface_hub import try_to_load_from_cache

    hub_root = hub_cache_dir(repo_id).parent  # honours HF_HOME / HF_HUB_CACHE as set now
    paths = [try_to_load_from_cache(repo_id, f, cache_dir=hub_root) for f in AUDIOCRAFT_FILES]
    if not all(isinstance(p, str) for p in paths):
        return None
    folders = {Path(str(p)).parent for p in paths}
    return folders.pop() if len(folders) == 1 else None


def _download_hint(repo_id: str, local: Path, references: Sequence[str]) -> str:
    """What to download and where to put it."""
    commands = " && ".join(f"hf download {repo}" for repo in (repo_id, *references))
    hint = (
        f"where there is internet, run `{commands}` (older huggingface_hub: "
        f"`huggingface-cli download` instead of `hf download`) and copy the hub cache "
        f"({hub_cache_dir(repo_id).parent}) to this machine, "
        f"or put {' and '.join(AUDIOCRAFT_FILES)} in {local}"
    )
    if references:
        hint += f" (the official checkpoint also loads {' and '.join(references)} from the hub cache)"
    return hint


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Forbid hub network access while loading, so a missing file fails at once.

    huggingface_hub reads HF_HUB_OFFLINE at import time, so its constant is switched as well.
    """
    from huggingface_hub import constants

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


# --- engine --------------------------------------------------------------------------------------


class AudiocraftEngine(Engine):
    """Text to audio with an audiocraft ``BaseGenModel``.

    A batch is generated in one ``generate()`` call at its longest duration; each clip is then
    trimmed to its own duration. Each clip samples from its own generator seeded with its
    request's seed (:func:`route_sampling_to_row_generators`), so a clip's tokens are the same
    alone or beside any neighbours; the clips of a batch must share their sampling controls.

    Clips longer than one window (the checkpoint's training segment, or the catalog's shorter
    ``window_seconds``) are generated by audiocraft in overlapping windows, each advancing by
    the catalog's ``extend_stride``; progress counts the tokens of every window. On a GPU
    audiocraft runs the LM under fp16 autocast (its own ``TorchAutocast``); on CPU in fp32.
    One generation at a time per engine (a lock): the model's generation parameters are shared.
    """

    references: tuple[str, ...] = ()  # other hub repos the official checkpoint loads

    def __init__(self, spec: ModelSpec, settings: Settings, device: str):
        super().__init__(spec, device)
        name = resolve_checkpoint(spec, settings, self.references)
        route_memory_efficient_attention_to_sdpa()
        route_sampling_to_row_generators()
        try:
            with _hub_offline():
                self.model = self.load_pretrained(name)
        except OSError as e:  # e.g. t5-base or facebook/encodec_32khz missing from the hub cache
            hint = _download_hint(spec.checkpoint, local_checkpoint_dir(spec, settings), self.references)
            raise ModelUnavailable(f"{spec.checkpoint} could not be loaded offline from {name} ({e}): {hint}") from e
        if spec.window_seconds and spec.window_seconds < self.model.max_duration:
            self.model.max_duration = float(spec.window_seconds)
        self._lock = threading.Lock()

    @abstractmethod
    def load_pretrained(self, name: str) -> Any:
        """Load the model with the library's own ``get_pretrained(name, device=...)``."""

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def extend_stride(self) -> float:
        """Seconds each further window advances (the catalog's, else audiocraft's default)."""
        default = 2.0 if self.spec.family == "audiogen" else 18.0
        stride = float(self.spec.extend_stride or default)
        return min(stride, self.model.max_duration / 2)  # audiocraft needs stride < window

    def configure(self, seconds: float, controls: dict[str, Any]) -> None:
        """Prepare the model to generate at least ``seconds`` of audio with ``controls``."""
        self.model.set_generation_params(
            duration=self._generation_duration(seconds),
            extend_stride=self.extend_stride,
            **_autoregressive_params(controls),
        )

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[GeneratedAudio]:
        if not requests:
            return []
        for r in requests:
            if not r.duration > 0:
                raise ValueError(f"duration must be positive, got {r.duration}")
            if r.controls != requests[0].controls:
                raise ValueError("the clips of one batch must share their sampling controls")
        longest = max(r.duration for r in requests)
        report = progress or (lambda _: None)
        with self._lock:
            self.configure(longest, dict(requests[0].controls))
            self.model.set_custom_progress_callback(_ProgressMapper(report, self.window_plan(self.model.duration)))
            torch.manual_seed(requests[0].seed)  # any draw outside the sampler (none in audiocraft 1.3)
            try:
                with torch.inference_mode(), _row_generators([r.seed for r in requests], self.device):
                    # progress=True makes audiocraft call the custom callback (it prints without one)
                    wav, tokens = self.model.generate([r.prompt for r in requests], progress=True, return_tokens=True)
            finally:
                self.model.set_custom_progress_callback(None)
        clips = wav.detach().float().cpu().numpy()
        codes = tokens.detach().cpu().numpy()
        sr = self.sample_rate
        out = [
            GeneratedAudio(_fit(clips[i], round(r.duration * sr)), sr, tokens=codes[i]) for i, r in enumerate(requests)
        ]
        report(1.0)
        return out

    def close(self) -> None:
        self.model = None
        gc.collect()
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _generation_duration(self, seconds: float) -> float:
        """The duration to ask audiocraft for so that it makes ceil(seconds * frame_rate) frames.

        audiocraft makes int(duration * frame_rate) frames; asking for half a frame more keeps
        float rounding from losing one, without crossing max_duration (which would switch to
        the slower windowed generation).
        """
        frame_rate = self.model.frame_rate
        frames = math.ceil(seconds * frame_rate - 1e-6)
        padded = (frames + 0.5) / frame_rate
        return min(padded, self.model.max_duration) if seconds <= self.model.max_duration else padded

    def window_plan(self, duration: float) -> WindowPlan:
        """How audiocraft will generate ``duration`` seconds: the new tokens of each window.

        Mirrors ``_generate_tokens``: beyond max_duration it generates overlapping windows of at
        most max_duration, each prompted with the previous one's tail and advancing by
        extend_stride seconds.
        """
        model = self.model
        frame_rate = model.frame_rate
        total = int(duration * frame_rate)
        if duration <= model.max_duration:
            return WindowPlan((max(total, 1),), 0)
        stride = int(frame_rate * model.extend_stride)
        offset, prompt, new_tokens = 0, 0, []
        while offset + prompt < total:
            chunk = int(min(duration - offset / frame_rate, model.max_duration) * frame_rate)
            new_tokens.append(max(chunk - prompt, 1))
            prompt = chunk - stride
            offset += stride
        return WindowPlan(tuple(new_tokens), stride)


@dataclass(frozen=True)
class WindowPlan:
    new_tokens: tuple[int, ...]  # tokens each window adds
    stride_tokens: int  # tokens each later window's offset advances

    @property
    def windows(self) -> int:
        return len(self.new_tokens)


def _autoregressive_params(controls: dict[str, Any]) -> dict[str, Any]:
    """MusicGen/AudioGen ``set_generation_params`` arguments for the given controls."""
    names = {"top_k": "top_k", "top_p": "top_p", "temperature": "temperature", "cfg_coef": "cfg_coef"}
    return {names[k]: v for k, v in controls.items() if k in names}


class _ProgressMapper:
    """Maps audiocraft's ``callback(generated_tokens, tokens_to_generate)`` to 0..1 for the call.

    Each generation window calls back with a count that ends at ``tokens_to_generate``; in
    windowed generation audiocraft adds the window's token offset (window index x stride).
    Progress is the share of all windows' new tokens generated so far, so it moves evenly across
    windows. MAGNeT calls back with (decoding step, steps) in its single window.
    """

    def __init__(self, report: ProgressFn, plan: WindowPlan | None = None):
        self.report = report
        self.plan = plan or WindowPlan((1,), 0)
        self.total = sum(self.plan.new_tokens)
        self.done = 0  # finished windows
        self.done_tokens = 0

    def __call__(self, generated: int, to_generate: int) -> None:
        local = generated - self.done * self.plan.stride_tokens
        share = min(max(local / max(to_generate, 1), 0.0), 1.0)
        window = self.plan.new_tokens[min(self.done, self.plan.windows - 1)]
        fraction = (self.done_tokens + share * window) / self.total
        if local >= to_generate and self.done < self.plan.windows - 1:
            self.done += 1
            self.done_tokens += window
        self.report(min(max(fraction, 0.0), 1.0))


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` (channels, n) trimmed or zero-padded to ``length``, float32, contiguous."""
    samples = samples[:, :length]
    if samples.shape[1] < length:
        samples = np.pad(samples, ((0, 0), (0, length - samples.shape[1])))
    return np.ascontiguousarray(samples, dtype=np.float32)
