"""Generated corpora kept on disk between runs (``var/cache/corpus``, or ``SOUNDBOX_CORPUS_CACHE``).

A corpus is a pure function of its generator's source, its seeds, the real Piper speech it
mixes in, and numpy/scipy (whose filters and resamplers it calls). The cache file's name
carries a hash of all of them, so any change to the generator, the seeds, the voice or those
libraries makes a new file and the clips are generated again: a cached clip is always the clip
the code would generate now. Files are written atomically (parallel runs may share the folder).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import scipy

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("SOUNDBOX_CORPUS_CACHE") or ROOT / "var" / "cache" / "corpus")


def corpus_key(module: ModuleType, seeds: range, inputs: Iterable[np.ndarray] = ()) -> str:
    """What the clips of ``seeds`` depend on: the generator module's source, the seeds, the
    arrays it reads (the Piper speech) and the numeric libraries' versions."""
    digest = hashlib.sha256()
    digest.update(Path(module.__file__ or "").read_bytes())
    digest.update(f"{seeds.start}:{seeds.stop}:{seeds.step}|{np.__version__}|{scipy.__version__}".encode())
    for array in inputs:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:20]


def cached_corpus(
    module: ModuleType, seeds: range, make: Callable[[int], Any], inputs: Iterable[np.ndarray] = ()
) -> list[Any]:
    """``[make(s) for s in seeds]``, from the cache when it holds this exact corpus."""
    name = module.__name__.rsplit(".", 1)[-1]
    path = CACHE_DIR / f"{name}-{seeds.start}-{seeds.stop}-{corpus_key(module, seeds, inputs)}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                clips = pickle.load(f)
            if isinstance(clips, list) and len(clips) == len(seeds):
                return clips
        except Exception:  # a truncated or foreign file: generate again and replace it
            pass
    clips = [make(int(s)) for s in seeds]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(clips, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        for old in path.parent.glob(f"{name}-{seeds.start}-{seeds.stop}-*.pkl"):
            if old != path:  # an earlier generator's clips: never read again
                old.unlink(missing_ok=True)
    except OSError:  # a read-only checkout still runs, only slower
        pass
    return clips
