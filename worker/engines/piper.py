"""Piper: text to speech for the queued ``voice`` model, a thin adapter over :mod:`shared.speech`.

Voices come from voice packages and ``settings.voices_dir`` (:mod:`shared.speech.voices`). The
voice's noise is deterministic: the request's seed picks it, so a quality retry (seed + 1) speaks
the text anew while the same job parameters always give the same audio.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from shared.domain.catalog import ModelSpec
from shared.settings import Settings
from shared.speech.synth import SpeechOptions, Utterance
from shared.speech.voices import LoadedVoice, VoiceCache, find_voice
from worker.engines.base import Engine, GeneratedAudio, GenerationRequest, ProgressFn


class PiperEngine(Engine):
    """Speaks each request's prompt with ``request.voice`` (default: ``spec.checkpoint``)."""

    def __init__(self, spec: ModelSpec, settings: Settings, device: str):
        super().__init__(spec, device)
        self.settings = settings
        self._voices = VoiceCache(
            settings.speech_voice_cache_size, cuda=device.startswith("cuda"), threads=settings.speech_threads
        )
        self._voice(spec.checkpoint)  # load the default voice now: fail early, know the sample rate

    @property
    def sample_rate(self) -> int:
        """The default voice's rate; a clip in another voice carries its own in GeneratedAudio."""
        return self._voice(self.spec.checkpoint).sample_rate

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressFn | None = None
    ) -> list[GeneratedAudio]:
        report = progress or (lambda _: None)
        out = []
        for i, request in enumerate(requests):
            voice = self._voice(request.voice or self.spec.checkpoint)
            utterance = Utterance(voice, request.prompt, SpeechOptions(seed=request.seed))
            chunks = []
            for k in range(len(utterance)):
                chunks.append(utterance.render(k))
                report((i + (k + 1) / len(utterance)) / len(requests))
            out.append(GeneratedAudio(np.concatenate(chunks)[None, :], voice.sample_rate))
        report(1.0)
        return out

    def close(self) -> None:
        self._voices.clear()

    def _voice(self, voice_id: str) -> LoadedVoice:
        """The loaded voice ``voice_id``; ValueError naming the available ones if unknown."""
        return self._voices.get(find_voice(self.settings, voice_id))
