"""shared.audio.quality: the kind-aware analyzer, check by check, and its report.

The statistical claim (detection and false-positive rates on a labeled corpus) is in
test_audio_quality_corpus.py; here each defect and each kind of good material that must not be
flagged has a hand-made case, at several sample rates.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from shared.audio.io import encode_wav
from shared.audio.quality import (
    KINDS,
    QualityReport,
    QualityThresholds,
    analyze,
    analyze_file,
    compute_features,
    thresholds_for,
)
from tests.shared import audio_corpus as corpus

SR = 32000
RATES = (16000, 22050, 32000, 44100, 48000)
REPO = Path(__file__).resolve().parents[2]


def codes(report: QualityReport) -> list[str]:
    return [issue.code for issue in report.issues]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def music(sr: int = SR, seconds: float = 4.0, seed: int = 0, peak: float = 0.7) -> np.ndarray:
    x = corpus.music_melody(rng(seed), int(seconds * sr), sr)
    return (x / np.abs(x).max() * peak).astype(np.float32)


def assert_flags_alone(report: QualityReport, code: str) -> None:
    """One defect: reported, not good, scored under 50."""
    assert code in codes(report), report
    assert not report.is_good and report.score < 50


# --- good material is not flagged -----------------------------------------------------------------


@pytest.mark.parametrize("sr", RATES)
def test_clean_music_passes_at_every_rate(signals, sr):
    for audio in (signals.chord(sr=sr), music(sr), np.stack([music(sr), 0.8 * music(sr)])):
        report = analyze(audio, sr, "music")
        assert report.issues == [] and report.score == 100.0 and report.is_good


def test_strong_unclipped_peaks_pass(signals):
    for seed in range(3):
        x = corpus.music_drums(rng(seed), 4 * SR, SR, with_melody=True)
        loud = (x / np.abs(x).max() * 0.9999).astype(np.float32)
        wav16 = (np.round(loud * 32767) / 32767).astype(np.float32)  # as a 16-bit file holds it
        assert analyze(loud, SR).is_good and analyze(wav16, SR).is_good


@pytest.mark.parametrize("base", ["rain", "wind", "waves", "fire", "crowd", "stream"])
def test_noisy_effects_are_good_sfx_but_noise_as_music(base):
    sr = 22050
    x = corpus.SFX[base](rng(1), 4 * sr, sr)
    x = (x / np.abs(x).max() * 0.5).astype(np.float32)
    assert analyze(x, sr, "sfx").is_good, analyze(x, sr, "sfx")
    if base in ("rain", "wind", "waves", "stream"):  # steady noise: a defect where music was asked
        assert "noise_like" in codes(analyze(x, sr, "music"))


def test_percussive_hits_with_digital_silence_between_are_good():
    for sr in (16000, 44100):
        x = corpus.sfx_hits(rng(3), 5 * sr, sr)
        assert (x == 0).mean() > 0.3  # long stretches of true digital silence
        report = analyze((x / np.abs(x).max() * 0.8).astype(np.float32), sr, "sfx")
        assert report.is_good, report


def test_quiet_ambience_and_quiet_speech_are_good():
    sr = 32000
    bed = corpus.sfx_ambience(rng(4), 4 * sr, sr)
    bed = (bed / np.sqrt(np.mean(bed**2)) * 10 ** (-48 / 20)).astype(np.float32)  # -48 dBFS RMS
    assert analyze(bed, sr, "sfx").is_good
    sentences, voice_sr = corpus.piper_sentences()
    quiet = (sentences[1] / np.sqrt(np.mean(sentences[1] ** 2)) * 10 ** (-40 / 20)).astype(np.float32)
    assert analyze(quiet, voice_sr, "speech").is_good


def test_real_piper_speech_is_good_at_every_rate():
    sentences, voice_sr = corpus.piper_sentences()
    for sr in RATES:
        speech = corpus._resample(sentences[0], voice_sr, sr).astype(np.float32)
        report = analyze(speech, sr, "speech")
        assert report.is_good, (sr, report)


# --- each defect is caught ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_digital_silence_and_near_silence(signals, kind):
    report = analyze(signals.silence(), SR, kind)
    assert codes(report) == ["silence"] and report.issues[0].severity == "severe" and report.score < 50
    assert_flags_alone(analyze(music() * 10 ** (-70 / 20), SR, kind), "silence")


@pytest.mark.parametrize("sr", RATES)
def test_hard_clipping(sr):
    x = music(sr, peak=1.0)
    for clipped in (np.clip(3 * x, -1, 1), np.clip(x, -0.4, 0.4)):  # into full scale, or at any level
        assert_flags_alone(analyze(clipped.astype(np.float32), sr, "music"), "clipping")
    noisy = corpus.sfx_rain(rng(2), 3 * sr, sr)
    noisy = np.clip(noisy / np.abs(noisy).max() * 2, -1, 1).astype(np.float32)
    assert_flags_alone(analyze(noisy, sr, "sfx"), "clipping")


@pytest.mark.parametrize("sr", RATES)
def test_broadband_noise_where_music_was_asked(sr):
    white = (0.1 * rng(5).standard_normal(3 * sr)).astype(np.float32)
    pink = corpus._pink(rng(6), 3 * sr)
    pink = (pink / np.abs(pink).max() * 0.5).astype(np.float32)
    buried = (music(sr, 3.0) + 3 * white).astype(np.float32)
    for noise in (white, pink, buried):
        assert_flags_alone(analyze(noise, sr, "music"), "noise_like")
        assert "noise_like" not in codes(analyze(noise, sr, "sfx"))
    assert_flags_alone(analyze(white, sr, "speech"), "noise_like")


@pytest.mark.parametrize("sr", RATES)
def test_dominant_high_frequency_hiss(sr):
    x = music(sr, 3.0)
    sos = butter(6, 0.6 * sr / 2, btype="highpass", fs=sr, output="sos")
    hiss = sosfilt(sos, rng(7).standard_normal(x.size))
    hiss = hiss / np.sqrt(np.mean(hiss**2)) * np.sqrt(np.mean(x**2))
    assert_flags_alone(analyze((x + hiss).astype(np.float32), sr, "music"), "hf_noise")
    sentences, voice_sr = corpus.piper_sentences()
    speech = corpus._resample(sentences[2], voice_sr, sr)
    hiss = sosfilt(sos, rng(8).standard_normal(speech.size))
    speech = speech + hiss / np.sqrt(np.mean(hiss**2)) * np.sqrt(np.mean(speech**2))
    assert_flags_alone(analyze(speech.astype(np.float32), sr, "speech"), "hf_noise")


def test_dc_offset(signals):
    assert_flags_alone(analyze(music() + 0.2, SR), "dc_offset")
    quiet = corpus.sfx_ambience(rng(9), 3 * SR, SR)
    quiet = quiet / np.sqrt(np.mean(quiet**2)) * 0.01
    assert_flags_alone(analyze((quiet + 0.05).astype(np.float32), SR, "sfx"), "dc_offset")


@pytest.mark.parametrize("sr", RATES)
def test_dropouts(sr):
    x = music(sr)
    x[int(1.5 * sr) : int(1.58 * sr)] = 0.0
    report = analyze(x, sr)
    assert_flags_alone(report, "dropout")
    issue = next(i for i in report.issues if i.code == "dropout")
    assert issue.value == pytest.approx(80, abs=2) and "1.50 s" in issue.message
    rain = corpus.sfx_rain(rng(10), 4 * sr, sr)
    rain[int(2 * sr) : int(2.03 * sr)] = 0.0
    assert_flags_alone(analyze((rain / np.abs(rain).max() * 0.5).astype(np.float32), sr, "sfx"), "dropout")


@pytest.mark.parametrize("kind", KINDS)
def test_content_that_stops_early(kind):
    x = music(seconds=5.0)
    x[int(0.4 * x.size) :] = 0.0
    assert_flags_alone(analyze(x, SR, kind), "early_stop")
    faded = music(seconds=5.0)
    cut = int(0.3 * faded.size)
    faded[cut - SR // 10 : cut] *= np.linspace(1, 0, SR // 10)  # a fade, then nothing for 70%
    faded[cut:] = 0.0
    assert_flags_alone(analyze(faded, SR, kind), "early_stop")


@pytest.mark.parametrize("kind", KINDS)
def test_stuck_tone(signals, kind):
    for sr, freq in ((16000, 1000.0), (48000, 220.0), (22050, 90.0)):
        tone = signals.sine(freq, 3.0, sr=sr, amp=0.5)
        assert_flags_alone(analyze(tone, sr, kind), "stuck_tone")
    # content that gets stuck on a tone a quarter of the way in
    x = music(seconds=4.0)
    x[SR:] = signals.sine(523.0, 3.0, amp=0.3)
    assert_flags_alone(analyze(x, SR, "music"), "stuck_tone")


def test_held_bass_note_under_a_melody_is_not_a_stuck_tone(signals):
    bass = signals.sine(55.0, 4.0, amp=0.8) + signals.sine(110.0, 4.0, amp=0.2)
    report = analyze((bass + music(seconds=4.0, peak=0.5)).astype(np.float32), SR)
    assert "stuck_tone" not in codes(report)


@pytest.mark.parametrize("sr", RATES)
def test_clicks_and_single_sample_spikes(sr):
    x = music(sr)
    for i, at in enumerate((0.7, 1.9, 3.1)):
        x[int(at * sr)] = 0.6 if i % 2 else -0.6
    report = analyze(x, sr)
    assert_flags_alone(report, "clicks")
    assert next(i for i in report.issues if i.code == "clicks").value == 3
    if sr > 16000:  # (at 16 kHz a bright melody's own edges are as sharp as a 4-sample bump)
        short = music(sr)
        at = int(2 * sr)
        short[at : at + 4] += 0.5 * np.hanning(6)[1:-1]  # a 4-sample click
        assert_flags_alone(analyze(short, sr), "clicks")


def test_onsets_from_silence_are_not_clicks():
    for sr in (16000, 48000):
        x = corpus.music_drums(rng(11), 4 * sr, sr, with_melody=False)
        assert "clicks" not in codes(analyze((x / np.abs(x).max() * 0.8).astype(np.float32), sr))


def test_several_defects_compound(signals):
    x = np.clip(3 * music(), -1, 1) + 0.3
    report = analyze(x.astype(np.float32), SR)
    assert {"clipping", "dc_offset"} <= set(codes(report))
    single = analyze(np.clip(3 * music(), -1, 1).astype(np.float32), SR)
    assert report.score < single.score < 50


# --- thresholds -------------------------------------------------------------------------------------


def test_thresholds_differ_by_kind_and_can_be_overridden():
    assert thresholds_for("music").max_noisiness < 1.0 <= thresholds_for("sfx").max_noisiness
    t = thresholds_for("sfx", {"*": {"silence_db": -55}, "sfx": {"hiss_ratio": 0.9}, "music": {"dc_min": 1}})
    assert t.silence_db == -55 and t.hiss_ratio == 0.9 and t.dc_min == thresholds_for("sfx").dc_min
    assert isinstance(thresholds_for("music", {"*": {"clip_min_count": 20.0}}).clip_min_count, int)
    with pytest.raises(ValueError, match="silence_dbx"):
        thresholds_for("music", {"*": {"silence_dbx": 1}})
    with pytest.raises(ValueError, match="podcast"):
        thresholds_for("music", {"podcast": {}})


def test_custom_thresholds_change_the_checks():
    quiet = (music() * 10 ** (-65 / 20)).astype(np.float32)
    assert "silence" in codes(analyze(quiet, SR))
    assert analyze(quiet, SR, thresholds=QualityThresholds(silence_db=-80.0, near_silence_rms_db=-90.0)).is_good
    strict = QualityThresholds(good_score=101.0)
    assert not analyze(music(), SR, thresholds=strict).is_good


def test_settings_carry_threshold_overrides(monkeypatch):
    from shared.settings import Settings

    monkeypatch.setenv("SOUNDBOX_QUALITY_THRESHOLDS", '{"sfx": {"hiss_ratio": 0.9}}')
    overrides = Settings().quality_thresholds
    assert thresholds_for("sfx", overrides).hiss_ratio == 0.9


# --- API shape ------------------------------------------------------------------------------------


def test_report_to_dict_is_json(signals):
    report = analyze(np.clip(3 * music(), -1, 1) + 0.3, SR)  # two issues
    data = report.to_dict()
    assert set(data) == {"score", "issues", "is_good", "waived"} and len(data["issues"]) >= 2
    assert isinstance(data["score"], float) and data["score"] == round(data["score"], 1)
    assert data["is_good"] is False
    for issue in data["issues"]:
        assert set(issue) == {"code", "severity", "value", "threshold", "message", "confidence", "fails"}
        assert 0.5 <= issue["confidence"] <= 1 and issue["fails"] is True
        assert issue["severity"] in ("minor", "moderate", "severe")
        assert type(issue["value"]) is float and type(issue["threshold"]) is float
        assert isinstance(issue["message"], str) and issue["message"]
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    json.dumps(analyze(signals.silence(), SR).to_dict(), allow_nan=False)


def test_unknown_kind_is_rejected(signals):
    with pytest.raises(ValueError, match="kind"):
        analyze(signals.sine(), SR, kind="podcast")
    with pytest.raises(ValueError, match="kind"):
        analyze(signals.sine(), SR, kind="podcast", thresholds=QualityThresholds())


def test_bad_input_is_rejected(signals):
    with pytest.raises(ValueError):
        analyze(np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(ValueError):
        analyze(signals.sine(), 0)


def test_tiny_and_odd_inputs_do_not_break(signals):
    for audio in (np.zeros(10, dtype=np.float32), signals.sine(seconds=0.01), signals.noise(seconds=0.05)):
        json.dumps(analyze(audio, SR).to_dict(), allow_nan=False)
    audio = music()
    audio[::100] = np.nan
    json.dumps(analyze(audio, SR).to_dict(), allow_nan=False)


def test_layouts_agree():
    audio = music()
    assert analyze(audio, SR) == analyze(audio[np.newaxis, :], SR)
    assert analyze(np.stack([audio, audio]), SR).score == analyze(audio, SR).score


def test_clipping_in_one_channel_of_stereo():
    left = music(peak=1.0)
    stereo = np.stack([np.clip(3 * left, -1, 1), 0.5 * left]).astype(np.float32)
    assert "clipping" in codes(analyze(stereo, SR))


def test_analyze_file(tmp_path):
    path = tmp_path / "clip.wav"
    path.write_bytes(encode_wav(np.clip(3 * music(), -1, 1), SR))
    assert codes(analyze_file(path, "sfx")) == ["clipping"]
    assert analyze_file(str(path)).issues[0].code == "clipping"


def test_features_are_exposed():
    f = compute_features(music(), SR)
    assert f.sample_rate == SR and f.duration == pytest.approx(4.0) and f.tonality > 0.5 and f.clicks == ()


def test_analysis_imports_no_librosa_numba_or_torch():
    code = (
        "import sys, numpy as np\n"
        "from shared.audio import analyze\n"
        "analyze(np.sin(np.arange(32000) * 0.1).astype(np.float32), 32000)\n"
        "heavy = [m for m in ('librosa', 'numba', 'torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# --- what real material looks like (issue 13) ------------------------------------------------------

from tests.shared import audio_corpus_b as corpus_b  # noqa: E402


@pytest.mark.parametrize("sr", (22050, 44100))
def test_limiter_mastered_mix_is_not_clipping_but_clipping_it_is(sr):
    for seed in range(3):
        master = corpus_b.music_master(rng(seed), 4 * sr, sr).astype(np.float32)
        f = compute_features(master, sr)
        assert 8 <= f.clip_count <= 200  # the limiter's peaks sit exactly on its ceiling
        report = analyze(master, sr, "music")
        assert report.is_good, report
        assert all(not i.fails for i in report.issues)
        clipped = np.clip(master * 10 ** (3 / 20), -0.97, 0.97).astype(np.float32)  # 3 dB into the ceiling
        assert_flags_alone(analyze(clipped, sr, "music"), "clipping")


@pytest.mark.parametrize("base", ["fire", "rain", "knocks", "engine", "footsteps"])
def test_natural_transients_are_not_clicks(base):
    for sr in (16000, 44100):
        x = corpus_b.SFX[base](rng(12), 4 * sr, sr)
        x = (x / np.abs(x).max() * 0.8).astype(np.float32)
        assert "clicks" not in codes(analyze(x, sr, "sfx")), (base, sr)


def test_clicks_on_a_steady_effect_are_still_caught():
    sr = 32000
    x = corpus_b.sfx_wind(rng(13), 4 * sr, sr)
    x = x / np.abs(x).max() * 0.3
    for at in (0.6, 1.7, 2.9):
        x[int(at * sr)] = 0.9
    assert_flags_alone(analyze(x.astype(np.float32), sr, "sfx", prompt="wind howling"), "clicks")


def test_beeps_and_decaying_rings_are_not_stuck_tones():
    sr = 22050
    for make in (corpus_b.sfx_beeps, corpus_b.sfx_impact):
        x = make(rng(14), 4 * sr, sr)
        x = (x / np.abs(x).max() * 0.7).astype(np.float32)
        assert "stuck_tone" not in codes(analyze(x, sr, "sfx")), make.__name__


def test_prompt_waives_what_it_asks_for(signals):
    sr = 16000
    drone = signals.sine(110.0, 3.0, sr=sr, amp=0.5)
    assert_flags_alone(analyze(drone, sr, "sfx"), "stuck_tone")
    for prompt, word in (("a low drone", "drone"), ("Microwave BEEPING", "beep"), ("1 kHz sine tone", "sine")):
        report = analyze(drone, sr, "sfx", prompt=prompt)
        assert report.is_good and report.score == 100 and report.issues == []
        assert [(w.code, word in w.words) for w in report.waived] == [("stuck_tone", True)]
    assert not analyze(drone, sr, "sfx", prompt="a violin solo").is_good  # words must match
    assert not analyze(drone, sr, "sfx", prompt="a beetle").is_good  # ... at the start of a word, whole prefix
    steam = corpus_b.sfx_steam(rng(15), 3 * 22050, 22050).astype(np.float32)
    assert "hf_noise" in codes(analyze(steam, 22050, "sfx"))
    waived = analyze(steam, 22050, "sfx", prompt="steam hissing from a pipe")
    assert waived.is_good and {w.code for w in waived.waived} == {"hf_noise"}
    assert waived.to_dict()["waived"][0]["words"] == ["steam", "hiss"]
    white = (0.1 * rng(16).standard_normal(3 * SR)).astype(np.float32)
    assert analyze(white, SR, "music", prompt="white noise for sleep").is_good


@pytest.mark.parametrize("kind", KINDS)
def test_near_silence_and_a_blip_in_silence(kind):
    x = music()
    for rms_db in (-56.0, -59.0, -66.0):  # RMS 0.0016, 0.0011, 0.0005
        quiet = (x / np.sqrt(np.mean(x**2)) * 10 ** (rms_db / 20)).astype(np.float32)
        assert_flags_alone(analyze(quiet, SR, kind), "silence")
    blip = np.zeros(4 * SR, dtype=np.float32)
    blip[SR : SR + 320] = 0.5 * np.hanning(320)  # 10 ms
    assert_flags_alone(analyze(blip, SR, kind), "silence")
    room = corpus_b.sfx_roomtone(rng(17), 3 * SR, SR)
    room = (room / np.sqrt(np.mean(room**2)) * 10 ** (-60 / 20)).astype(np.float32)  # a quiet room, -60 dBFS
    assert "silence" in codes(analyze(room, SR, "sfx"))
    asked = analyze(room, SR, "sfx", prompt="quiet room tone")
    assert asked.is_good and asked.waived[0].code == "silence"


def test_piper_speech_at_three_speeds_and_rates_is_good():
    audio, voice_sr = corpus_b.piper_speech()
    for (text, scale), x in audio.items():
        for sr in (16000, 44100):
            report = analyze(corpus_b._resample(x, voice_sr, sr).astype(np.float32), sr, "speech")
            assert report.is_good, (text, scale, sr, report)


def test_minor_findings_do_not_fail_and_failing_ones_score_under_50():
    x = music(peak=0.5)
    rms = float(np.sqrt(np.mean(x**2)))
    dc = (x + max(0.03, 0.7 * 0.25 * rms)).astype(np.float32)  # a DC offset short of the limit: a note
    report = analyze(dc, SR)
    assert [(i.code, i.fails, i.severity) for i in report.issues] == [("dc_offset", False, "minor")]
    assert report.is_good and 90 <= report.score < 100 and report.issues[0].confidence < 0.5
    bad = analyze((x + 0.2).astype(np.float32), SR)
    assert not bad.is_good and bad.score < 50
    assert all(i.fails and i.severity in ("moderate", "severe") and 0.5 <= i.confidence <= 1 for i in bad.issues)
