"""Sentence-by-sentence synthesis with Piper's options.

:class:`Utterance` phonemizes the whole text up front (fast: espeak-ng), then renders one
sentence per :meth:`Utterance.render` call, so a caller can send, report or stop between
sentences. With a voice whose noise is deterministic (:mod:`shared.speech.noise`), the same
text, voice and options always give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from shared.speech.noise import DEFAULT_SEED, noise_for
from shared.speech.voices import LoadedVoice

# A sentence longer than this many phonemes is cut at a word boundary: it bounds the time to the
# first audio and the memory of one inference (~400 phonemes is ~25 s of speech).
MAX_SENTENCE_PHONEMES = 400


class SpeechOptionError(ValueError):
    """An option the chosen voice cannot honour; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


class NothingToSay(ValueError):
    """The text has nothing the voice can pronounce."""


@dataclass(frozen=True)
class SpeechOptions:
    """Piper's synthesis options; ``None`` means the voice's own default."""

    length_scale: float | None = None  # phoneme duration; > 1 slower
    noise_scale: float | None = None  # generator noise (voice variation)
    noise_w: float | None = None  # phoneme-width noise (rhythm variation)
    speaker: int | str | None = None  # id or name, multi-speaker voices only
    sentence_silence: float = 0.0  # seconds of silence after each sentence but the last
    speed: float = 1.0  # OpenAI's speed: the length scale is divided by it
    seed: int = DEFAULT_SEED  # which deterministic noise to use


def resolve_speaker(voice: LoadedVoice, speaker: int | str | None) -> int | None:
    """The speaker id to feed the model (None for single-speaker voices)."""
    config = voice.piper.config
    if config.num_speakers <= 1:
        if speaker not in (None, 0, "0"):
            raise SpeechOptionError("speaker", f"voice {voice.info.id!r} has a single speaker")
        return None
    if speaker is None:
        return int(config.default_speaker_id)
    if isinstance(speaker, str) and not speaker.isdigit():
        if speaker in config.speaker_id_map:
            return int(config.speaker_id_map[speaker])
        names = sorted(config.speaker_id_map, key=config.speaker_id_map.get)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise SpeechOptionError(
            "speaker",
            f"voice {voice.info.id!r} has no speaker {speaker!r}; "
            f"speakers: {shown or f'ids 0-{config.num_speakers - 1}'}",
        )
    sid = int(speaker)
    if not 0 <= sid < config.num_speakers:
        raise SpeechOptionError("speaker", f"voice {voice.info.id!r} has speakers 0-{config.num_speakers - 1}")
    return sid


def split_long(phonemes: list[str], limit: int = MAX_SENTENCE_PHONEMES) -> list[list[str]]:
    """Cut a phoneme sentence longer than ``limit`` at word boundaries (spaces) where possible."""
    parts = []
    while len(phonemes) > limit:
        cut = max((i for i, p in enumerate(phonemes[:limit]) if p == " "), default=-1)
        if cut < limit // 2:
            cut = limit  # no usable word boundary: cut anyway
        head, phonemes = phonemes[:cut], phonemes[cut:]
        while phonemes and phonemes[0] == " ":
            phonemes = phonemes[1:]
        if head:
            parts.append(head)
    if phonemes:
        parts.append(phonemes)
    return parts


class Utterance:
    """A text planned as sentences for one voice and one set of options."""

    def __init__(self, voice: LoadedVoice, text: str, options: SpeechOptions | None = None):
        options = options or SpeechOptions()
        config = voice.piper.config
        self.voice, self.options = voice, options
        self.sample_rate = voice.sample_rate
        self.speaker_id = resolve_speaker(voice, options.speaker)
        length = (config.length_scale if options.length_scale is None else options.length_scale) / options.speed
        noise = config.noise_scale if options.noise_scale is None else options.noise_scale
        noise_w = config.noise_w_scale if options.noise_w is None else options.noise_w
        self.scales = np.array([noise, length, noise_w], dtype=np.float32)
        self.sentences = [
            part for sentence in voice.piper.phonemize(text) if sentence for part in split_long(list(sentence))
        ]
        if not self.sentences:
            raise NothingToSay(f"nothing to speak in {text[:80]!r}")
        self.silence = np.zeros(round(max(0.0, options.sentence_silence) * self.sample_rate), dtype=np.float32)
        self._noise = noise_for(options.seed) if voice.noise_input else None
        self.rendered = 0  # sentences rendered so far

    def __len__(self) -> int:
        return len(self.sentences)

    def render(self, index: int) -> np.ndarray:
        """Sentence ``index`` as float32 mono in [-1, 1] (peak-normalized, as Piper does), followed
        by the sentence silence unless it is the last one."""
        piper = self.voice.piper
        ids = piper.phonemes_to_ids(self.sentences[index])
        args = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": self.scales,
        }
        if self.speaker_id is not None:
            args["sid"] = np.array([self.speaker_id], dtype=np.int64)
        if self._noise is not None and self.voice.noise_input is not None:
            args[self.voice.noise_input] = self._noise
        audio = np.asarray(piper.session.run(None, args)[0], dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else np.clip(audio / peak, -1.0, 1.0)
        if index < len(self.sentences) - 1 and self.silence.size:
            audio = np.concatenate([audio, self.silence])
        self.rendered += 1
        return audio

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self.sentences)):
            yield self.render(i)


def synthesize(voice: LoadedVoice, text: str, options: SpeechOptions | None = None) -> np.ndarray:
    """The whole text as one float32 mono array."""
    return np.concatenate(list(Utterance(voice, text, options)))
