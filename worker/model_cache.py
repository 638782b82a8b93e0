"""The worker's loaded models, behind one small interface: load on demand, keep the most
recently used ``capacity`` of them, close the rest."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from shared.domain.catalog import ModelSpec
from shared.settings import Settings
from worker.engines import load_engine
from worker.engines.base import Engine

Loader = Callable[[ModelSpec, Settings, str], Engine]


class ModelCache:
    """LRU cache of engines keyed by public model id.

    Thread-safe: one lock guards lookups, loads and evictions (a load holds it, so two threads
    never load the same model twice). The least recently used engine is closed *before* a new
    one loads, so GPU memory never holds more than ``capacity`` models. An engine is closed
    even if another thread still generates with it: the worker runs one job at a time.
    """

    def __init__(self, catalog: dict[str, ModelSpec], settings: Settings, device: str,
                 capacity: int | None = None, loader: Loader = load_engine):
        self.catalog = catalog
        self.settings = settings
        self.device = device
        self.capacity = capacity if capacity is not None else settings.model_cache_size
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {self.capacity}")
        self._loader = loader
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()

    def get(self, model_id: str) -> Engine:
        """The engine for ``model_id``, loaded now if needed (may raise ModelUnavailable)."""
        with self._lock:
            engine = self._engines.get(model_id)
            if engine is not None:
                self._engines.move_to_end(model_id)
                return engine
            if model_id not in self.catalog:
                raise KeyError(f"unknown model {model_id!r} (catalog: {', '.join(self.catalog)})")
            while len(self._engines) >= self.capacity:
                _, oldest = self._engines.popitem(last=False)
                oldest.close()
            engine = self._loader(self.catalog[model_id], self.settings, self.device)
            self._engines[model_id] = engine
            return engine

    def loaded(self) -> list[str]:
        """Ids of the loaded models, least recently used first."""
        with self._lock:
            return list(self._engines)

    def unload(self, model_id: str) -> None:
        """Close ``model_id``'s engine if it is loaded."""
        with self._lock:
            engine = self._engines.pop(model_id, None)
        if engine is not None:
            engine.close()

    def clear(self) -> None:
        """Close every loaded engine."""
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.close()
