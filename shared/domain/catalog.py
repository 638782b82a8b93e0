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
    # Memory (decimal GB): weights plus the working memory of one clip, and what each further clip
    # of a batch adds. The worker's memory manager plans with these until it has measured a load.
    memory_gb: float = 1.0
    item_memory_gb: float = 0.1
    fixed_durations: tuple[float, ...] = ()  # MAGNeT: the checkpoint makes exactly these lengths
    window_seconds: float | None = None  # one generation window (None: the checkpoint's own)
    extend_stride: float | None = None  # seconds each further window advances (longer clips)
    codebook_size: int = 2048  # the LM's vocabulary per codebook: top_k's upper bound
    codebooks: int = 4  # RVQ codebooks: MAGNeT's decoding_steps has one entry per codebook
    # What a fresh model generates first: one window (with every shorter duration bucket, and at every
    # batch size), and past it when the model makes longer clips (the windowed path, prompted
    # windows, has shapes of its own).
    warmup_durations: tuple[float, ...] = ()

    @property
    def uses_duration(self) -> bool:
        return self.family != "piper"

    @property
    def default_duration(self) -> float:
        """The duration a request without one gets."""
        return self.fixed_durations[0] if self.fixed_durations else 8.0

    @property
    def hub_id(self) -> str | None:
        """The public checkpoint name clients may see (never a server path; none for tiny models)."""
        return None if self.family == "piper" or Path(self.checkpoint).is_absolute() else self.checkpoint

    def memory_bytes(self, batch: int = 1) -> int:
        """Estimated memory for a batch of ``batch`` clips."""
        return int((self.memory_gb + self.item_memory_gb * max(batch - 1, 0)) * GB)


GB = 1_000_000_000
# MAGNeT checkpoints and the one clip length each makes (their training segment).
MAGNET_LENGTHS = {
    "facebook/magnet-small-10secs": 10.0,
    "facebook/magnet-small-30secs": 30.0,
    "facebook/magnet-medium-10secs": 10.0,
    "facebook/magnet-medium-30secs": 30.0,
    "facebook/audio-magnet-small": 10.0,
    "facebook/audio-magnet-medium": 10.0,
}


def _default(settings: Settings) -> dict[str, ModelSpec]:
    # Memory: the seed's VRAM table (MusicGen ~4 GB, AudioGen ~5 GB, MAGNeT ~6 GB, Piper ~0.5 GB);
    # per further clip of a batch from gpu-baseline.md (MusicGen-small 2.6 GB at 1, 8.0 GB at 16).
    magnet = settings.magnet_checkpoint
    length = MAGNET_LENGTHS.get(magnet, 10.0)
    return {
        "music": ModelSpec(
            "music",
            "musicgen",
            "music",
            "music",
            "facebook/musicgen-small",
            32000,
            1,
            120,
            "MusicGen small: text to music (beyond 30 s in overlapping windows)",
            memory_gb=4.0,
            item_memory_gb=0.36,
            window_seconds=30,
            extend_stride=18,
            warmup_durations=(10.0, 45.0),
        ),  # one window, and two (the windowed path)
        "audio": ModelSpec(
            "audio",
            "audiogen",
            "sfx",
            "audio",
            "facebook/audiogen-medium",
            16000,
            1,
            30,
            "AudioGen medium: text to sound effects (beyond 10 s in overlapping windows)",
            memory_gb=5.0,
            item_memory_gb=0.6,
            window_seconds=10,
            extend_stride=2,
            warmup_durations=(5.0, 15.0),
        ),
        "magnet": ModelSpec(
            "magnet",
            "magnet",
            "music",
            "magnet",
            magnet,
            32000,
            length,
            length,
            f"MAGNeT ({length:g} s): non-autoregressive text to music, fixed length",
            memory_gb=6.0,
            item_memory_gb=0.36,
            fixed_durations=(length,),
            warmup_durations=(length,),
        ),
        "voice": ModelSpec(
            "voice",
            "piper",
            "speech",
            "voice",
            DEFAULT_VOICE,
            22050,
            0,
            0,
            "Piper TTS: text to speech",
            memory_gb=0.5,
            item_memory_gb=0.05,
        ),
    }


def _tiny(settings: Settings) -> dict[str, ModelSpec]:
    root = settings.models_dir / "tiny"
    # Memory: measured on CPU (resident set after load and a 2 s generation, without the imports).
    # Music uses short 10 s windows so long clips exercise windowed generation quickly.
    return {
        "music": ModelSpec(
            "music",
            "musicgen",
            "music",
            "music",
            str(root / "musicgen"),
            32000,
            1,
            120,
            "tiny random-weight MusicGen (real classes, noise output)",
            memory_gb=0.06,
            item_memory_gb=0.01,
            window_seconds=10,
            extend_stride=5,
            codebook_size=256,
            warmup_durations=(10.0, 12.0),
        ),
        "audio": ModelSpec(
            "audio",
            "audiogen",
            "sfx",
            "audio",
            str(root / "audiogen"),
            16000,
            1,
            30,
            "tiny random-weight AudioGen (real classes, noise output)",
            memory_gb=0.06,
            item_memory_gb=0.01,
            window_seconds=10,
            extend_stride=2,
            codebook_size=256,
            warmup_durations=(10.0, 12.0),
        ),
        "magnet": ModelSpec(
            "magnet",
            "magnet",
            "music",
            "magnet",
            str(root / "magnet"),
            32000,
            10,
            10,
            "tiny random-weight MAGNeT (real classes, noise output, 10 s fixed)",
            memory_gb=0.06,
            item_memory_gb=0.01,
            fixed_durations=(10.0,),
            codebook_size=256,
            warmup_durations=(10.0,),
        ),
        "voice": ModelSpec(
            "voice",
            "piper",
            "speech",
            "voice",
            DEFAULT_VOICE,
            22050,
            0,
            0,
            "Piper TTS with the real en_US-joe-medium voice",
            memory_gb=0.25,
            item_memory_gb=0.02,
        ),
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
