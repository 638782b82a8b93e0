"""Generation engines, one per model family; ``load_engine`` builds the one a spec names.

Engine modules are imported on demand, so a worker serving only Piper never imports audiocraft.
"""

from __future__ import annotations

import importlib
from typing import Any

from shared.domain.catalog import ModelSpec
from shared.settings import Settings
from worker.engines.base import Engine

# family -> (module, class)
_ENGINES: dict[str, tuple[str, str]] = {
    "musicgen": ("worker.engines.musicgen", "MusicGenEngine"),
    "audiogen": ("worker.engines.audiogen", "AudioGenEngine"),
    "magnet": ("worker.engines.magnet", "MagnetEngine"),
    "piper": ("worker.engines.piper", "PiperEngine"),
}


def engine_class(spec: ModelSpec) -> type[Engine]:
    """The engine class serving ``spec`` (importing its module: audiocraft, Piper...)."""
    try:
        module, cls = _ENGINES[spec.family]
    except KeyError:
        raise ValueError(f"unknown model family {spec.family!r} (known: {', '.join(_ENGINES)})") from None
    return getattr(importlib.import_module(module), cls)


def load_engine(spec: ModelSpec, settings: Settings, device: str) -> Engine:
    """Load ``spec``'s model on ``device`` ('cpu', 'cuda', 'cuda:1', ...).

    Raises ``ModelUnavailable`` when its weights are not on this machine.
    """
    cls: Any = engine_class(spec)  # each family's constructor takes (spec, settings, device)
    return cls(spec, settings, device)
