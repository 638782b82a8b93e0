"""The model catalog: which models exist, their limits and where their weights come from.

Pure data (no torch): the API validates requests against it, the worker loads from it.
``default`` names the real checkpoints; ``tiny`` names small random-weight models of the same
audiocraft classes, created under ``<models_dir>/tiny`` on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from shared.settings import Settings

ModelId = Literal["music", "audio", "magnet", "voice"]
MODEL_IDS: tuple[str, ...] = get_args(ModelId)  # also the queue names (one queue per model)
DEFAULT_VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class ModelSpec:
    id: str  # public id: music | audio | magnet | voice
    family: str  # engine: musicgen | audiogen | magnet | piper
    kind: str  # audio kind for the quality analyzer: music | sfx | speech
    queue: str  # Celery queue serving it
    checkpoint: str  # hub id, or a local directory for the tiny catalog
    sample_rate: int
    min_duration: float
    max_duration: float
    description: str

    @property
    def uses_duration(self) -> bool:
        return self.family != "piper"


def _default(settings: Settings) -> dict[str, ModelSpec]:
    return {
        "music": ModelSpec("music", "musicgen", "music", "music", "facebook/musicgen-small", 32000, 1, 30,
                           "MusicGen small: text to music"),
        "audio": ModelSpec("audio", "audiogen", "sfx", "audio", "facebook/audiogen-medium", 16000, 1, 30,
                           "AudioGen medium: text to sound effects"),
        "magnet": ModelSpec("magnet", "magnet", "music", "magnet", "facebook/magnet-small-10secs", 32000, 1, 10,
                            "MAGNeT small (10 s): non-autoregressive text to music"),
        "voice": ModelSpec("voice", "piper", "speech", "voice", DEFAULT_VOICE, 22050, 0, 0,
                           "Piper TTS: text to speech"),
    }


def _tiny(settings: Settings) -> dict[str, ModelSpec]:
    root = settings.models_dir / "tiny"
    return {
        "music": ModelSpec("music", "musicgen", "music", "music", str(root / "musicgen"), 32000, 1, 30,
                           "tiny random-weight MusicGen (real classes, noise output)"),
        "audio": ModelSpec("audio", "audiogen", "sfx", "audio", str(root / "audiogen"), 16000, 1, 30,
                           "tiny random-weight AudioGen (real classes, noise output)"),
        "magnet": ModelSpec("magnet", "magnet", "music", "magnet", str(root / "magnet"), 32000, 1, 10,
                            "tiny random-weight MAGNeT (real classes, noise output)"),
        "voice": ModelSpec("voice", "piper", "speech", "voice", DEFAULT_VOICE, 22050, 0, 0,
                           "Piper TTS with the real en_US-joe-medium voice"),
    }


def get_catalog(settings: Settings) -> dict[str, ModelSpec]:
    return _tiny(settings) if settings.catalog == "tiny" else _default(settings)


# Files audiocraft's loaders read from a checkpoint directory or hub repository.
AUDIOCRAFT_FILES = ("state_dict.bin", "compression_state_dict.bin")


def local_checkpoint_dir(spec: ModelSpec, settings: Settings) -> Path:
    """Where an operator may place a checkpoint by hand: ``<models_dir>/<hub id>``."""
    p = Path(spec.checkpoint)
    return p if p.is_absolute() else settings.models_dir / spec.checkpoint


def hub_cache_dir(repo_id: str) -> Path:
    import os

    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
    return hub / ("models--" + repo_id.replace("/", "--"))


def checkpoint_present(spec: ModelSpec, settings: Settings) -> bool:
    """True when the weights can be loaded without a network (tiny models count: they are made on demand)."""
    if spec.family == "piper":
        return True  # the bundled voice package is a dependency of the worker
    if settings.catalog == "tiny":
        return True
    local = local_checkpoint_dir(spec, settings)
    if all((local / f).is_file() for f in AUDIOCRAFT_FILES):
        return True
    snapshots = hub_cache_dir(spec.checkpoint) / "snapshots"
    return any(all((s / f).exists() for f in AUDIOCRAFT_FILES) for s in snapshots.glob("*"))
