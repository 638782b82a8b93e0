"""MusicGen: text to music (autoregressive over EnCodec 32 kHz tokens)."""

from __future__ import annotations

from audiocraft.models import MusicGen

from worker.engines.audiocraft_engine import AudiocraftEngine


class MusicGenEngine(AudiocraftEngine):
    references = ("facebook/encodec_32khz", "t5-base")  # what facebook/musicgen-small loads

    def load_pretrained(self, name: str) -> MusicGen:
        return MusicGen.get_pretrained(name, device=self.device)
