"""The engine interface: a list of requests in, a list of audio clips out.

Engines take batches: the worker groups compatible waiting jobs into one ``generate()`` call
(worker/batcher.py). Each clip's randomness comes from its own request's seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from shared.domain.catalog import ModelSpec

ProgressFn = Callable[[float], None]  # receives 0..1 for the whole batch


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str  # text to generate from (text to speak for speech)
    duration: float  # seconds; ignored by speech engines
    seed: int
    voice: str | None = None
    # Sampling controls by name (shared/domain/sampling.py), already checked; missing ones take
    # the model's defaults. The clips of one batch must share them.
    controls: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)


@dataclass
class GeneratedAudio:
    samples: np.ndarray  # float32, shape (channels, n_samples), range about [-1, 1]
    sample_rate: int
    tokens: np.ndarray | None = None  # the codec tokens it was decoded from (audiocraft engines), for checks


class ModelUnavailable(RuntimeError):
    """The checkpoint is not on this machine; the message says what to download and where."""


class Engine(ABC):
    def __init__(self, spec: ModelSpec, device: str):
        self.spec = spec
        self.device = device

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

    @abstractmethod
    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[GeneratedAudio]:
        """Generate one clip per request, in order."""

    def close(self) -> None:
        """Release the model's memory."""
