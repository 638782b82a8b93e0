"""shared.audio.spectrogram: mel-spectrogram PNG rendering."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shared.audio.spectrogram import mel_db, render_spectrogram_png, warm_up

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm_up()  # compiles librosa's numba kernels, or loads them from NUMBA_CACHE_DIR


def read_png(data: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(data), format="png")


@pytest.mark.parametrize("sr", [16000, 22050, 32000, 48000])
def test_png_size_and_background(signals, sr):
    data = render_spectrogram_png(signals.chord(3.0, sr=sr), sr)
    assert data.startswith(PNG_MAGIC)
    image = read_png(data)
    assert image.shape[:2] == (300, 1000)
    corner = np.round(image[0, 0, :3] * 255).astype(int).tolist()
    assert corner == [0x1A, 0x1A, 0x2E]


def test_mel_bands_and_fmax(signals):
    spec, fmax = mel_db(signals.chord(1.0, sr=16000), 16000)
    assert spec.shape[0] == 128 and fmax == 8000.0
    assert spec.max() == pytest.approx(0.0)  # dB relative to the loudest bin
    assert mel_db(signals.chord(1.0, sr=11025), 11025)[1] == 5512.5


def test_stereo_silence_and_short_clips(signals):
    stereo = np.stack([signals.chord(2.0), signals.noise(2.0, amp=0.05)])
    for audio in (stereo, signals.silence(1.0), signals.sine(seconds=0.05)):
        assert read_png(render_spectrogram_png(audio, 32000)).shape[:2] == (300, 1000)
    with pytest.raises(ValueError):
        render_spectrogram_png(np.zeros(0, dtype=np.float32), 32000)


def test_threads_render_identical_images(signals):
    clips = [signals.chord(2.0), signals.sine(880, 2.0), signals.noise(2.0)]
    expected = [render_spectrogram_png(clip, 32000) for clip in clips]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda clip: render_spectrogram_png(clip, 32000), clips * 2))
    assert results == expected * 2


def test_no_pyplot_figures_leak(signals):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    render_spectrogram_png(signals.chord(1.0), 32000)
    assert plt.get_fignums() == before


def test_ten_seconds_of_stereo_render_once_into_one_image(signals):
    # (speed is measured by bench/postprocess.py, not asserted here)
    audio = np.stack([signals.chord(10.0), signals.chord(10.0)])
    assert read_png(render_spectrogram_png(audio, 32000)).shape[:2] == (300, 1000)
