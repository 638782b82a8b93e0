"""Audio utilities shared by the API and the workers (numpy/scipy/librosa; never torch).

Samples are float32 arrays shaped ``(channels, n)``; 1-D arrays are treated as mono.
Heavy dependencies (librosa, matplotlib, pyloudnorm, soundfile) are imported lazily.
"""

from shared.audio.io import decode_audio, duration_seconds, encode_wav
from shared.audio.loop import loop_crossfade_seconds, make_loopable
from shared.audio.loudness import integrated_loudness, normalize_loudness, true_peak_dbtp
from shared.audio.quality import (
    QualityIssue,
    QualityReport,
    QualityThresholds,
    analyze,
    analyze_file,
)
from shared.audio.spectrogram import render_spectrogram_png, warm_up

__all__ = [
    "QualityIssue",
    "QualityReport",
    "QualityThresholds",
    "analyze",
    "analyze_file",
    "decode_audio",
    "duration_seconds",
    "encode_wav",
    "integrated_loudness",
    "loop_crossfade_seconds",
    "make_loopable",
    "normalize_loudness",
    "render_spectrogram_png",
    "true_peak_dbtp",
    "warm_up",
]
