"""Categories from prompts (a table per kind) and from the audio (tempo from the beat tracker,
one-shot or steady dynamics, loop), and how the two are merged."""

from __future__ import annotations

import numpy as np
import pytest

from shared.audio.features import measure
from shared.audio.io import encode_wav
from shared.domain.categories import TOP, categorize, from_prompt, merge

SR = 22050


@pytest.mark.parametrize(
    "kind, prompt, expected, absent",
    [
        (
            "music",
            "upbeat electronic dance music with synth leads, 128 BPM",
            {"electronic", "happy", "synth", "fast"},
            set(),
        ),
        ("music", "calm acoustic guitar fingerpicking, folk style", {"calm", "guitar", "folk"}, {"fast"}),
        (
            "music",
            "epic orchestral trailer music with brass and strings",
            {"epic", "orchestral", "brass", "strings"},
            set(),
        ),
        ("music", "melancholic piano solo with soft reverb, slow tempo", {"sad", "piano", "slow"}, {"happy"}),
        (
            "music",
            "energetic 80s synthwave with pulsing bassline and arpeggios",
            {"synthwave", "bass", "energetic"},
            set(),
        ),
        ("music", "lofi hip hop beat at 85 bpm", {"lo-fi", "hip hop", "slow"}, {"fast"}),
        ("music", "dark horror drone with cello", {"dark", "ambient", "strings"}, set()),
        ("music", "chiptune boss battle", {"chiptune", "game music"}, set()),
        (
            "sfx",
            "forest ambience with birds chirping and wind through trees",
            {"forest", "birds", "wind", "ambience"},
            set(),
        ),
        ("sfx", "explosion with debris and echoing aftermath", {"explosion", "crash"}, set()),
        ("sfx", "footsteps on wooden floor, slow walking pace", {"footsteps"}, {"rain"}),
        ("sfx", "heavy rain on a tin roof with occasional thunder", {"rain", "thunder"}, set()),
        ("sfx", "sci-fi laser weapon firing, multiple shots", {"laser", "gunshot"}, set()),
        ("sfx", "wooden door creaking open slowly", {"door"}, set()),
        ("sfx", "car engine revving in a city street", {"car", "city"}, set()),
        ("sfx", "ui button click and a notification chime", {"click", "notification"}, set()),
        ("sfx", "dog barking in the distance", {"dogs"}, {"cats"}),
        ("sfx", "spaceship thrusters humming", {"spaceship", "energy"}, set()),
        ("sfx", "glass bottle shattering", {"glass"}, set()),
        ("speech", "Once upon a time, in a kingdom far away, there lived a king.", {"narration"}, set()),
        ("speech", "Attention passengers: the train to Paris is now boarding.", {"announcement"}, set()),
        ("speech", "Hello there!", {"greeting", "short line"}, {"narration"}),
        ("speech", '"Where were you?" she asked. "Out," he replied.', {"dialogue"}, set()),
        ("speech", "Warning: evacuate the area immediately.", {"warning"}, set()),
        ("speech", "Game over. You lose.", {"game"}, set()),
    ],
)
def test_prompt_categories(kind, prompt, expected, absent):
    cats = categorize(kind, prompt)
    names = {c["name"] for c in cats}
    assert expected <= names, cats
    assert not absent & names, cats
    assert len(cats) <= TOP
    assert all(0 < c["score"] <= 1 and c["group"] for c in cats)
    assert [c["score"] for c in cats] == sorted((c["score"] for c in cats), reverse=True)


def test_more_keywords_score_higher_and_top_few_are_kept():
    cats = from_prompt("sfx", "birds chirping, songbirds tweeting, a crow, and some rain")
    score = {c["name"]: c["score"] for c in cats}
    assert score["birds"] > score["rain"]
    many = "rain thunder wind storm forest water ocean fire birds dogs cats car train laser robot"
    assert len(categorize("sfx", many)) == TOP


def test_words_match_whole_words_only():
    assert "cats" not in {c["name"] for c in categorize("sfx", "scattered debris")}
    assert "car" not in {c["name"] for c in categorize("sfx", "cardboard box dropped")}
    assert categorize("music", "nothing here") == []


def click_track(bpm: float, seconds: float = 8.0) -> np.ndarray:
    y = np.zeros(int(SR * seconds), dtype=np.float32)
    period = int(SR * 60 / bpm)
    click = (np.sin(2 * np.pi * 1000 * np.arange(400) / SR) * np.exp(-np.arange(400) / 60)).astype(np.float32)
    for start in range(0, len(y) - 400, period):
        y[start : start + 400] += click
    return y


@pytest.mark.parametrize("bpm, name", [(70, "slow"), (110, "mid-tempo"), (150, "fast")])
def test_tempo_from_the_beat_tracker(bpm, name):
    features = measure(click_track(bpm), SR, "music")
    assert features.tempo_bpm is not None and abs(features.tempo_bpm - bpm) / bpm < 0.06, features
    cats = categorize("music", "a short piece", wav=encode_wav(click_track(bpm), SR))
    tempo = [c for c in cats if c["group"] == "tempo"]
    assert tempo and tempo[0]["name"] == name and tempo[0]["source"] == "audio"


def test_dynamics_from_the_audio():
    t = np.arange(int(SR * 2)) / SR
    rng = np.random.default_rng(0)
    hit = (rng.standard_normal(t.size) * np.exp(-t * 8)).astype(np.float32) * 0.5
    steady = (rng.standard_normal(t.size) * 0.1).astype(np.float32)
    assert measure(hit, SR, "sfx").one_shot
    assert not measure(steady, SR, "sfx").one_shot
    assert {"one-shot"} <= {c["name"] for c in categorize("sfx", "punch", wav=encode_wav(hit, SR))}
    assert {"steady"} <= {c["name"] for c in categorize("sfx", "hum", wav=encode_wav(steady, SR))}
    assert measure(steady, SR, "sfx").tempo_bpm is None  # only music is beat-tracked


def test_loopable_and_agreeing_sources_merge():
    cats = categorize("music", "techno at 128 bpm", loopable=True, wav=encode_wav(click_track(128), SR))
    by = {c["name"]: c for c in cats}
    assert by["loop"]["score"] == 1.0
    assert by["fast"]["source"] == "prompt+audio" and by["fast"]["value"] == 128.0  # the stated tempo wins
    merged = merge(
        [{"name": "rain", "group": "weather", "score": 0.55}], [{"name": "rain", "group": "weather", "score": 0.5}]
    )
    assert merged == [{"name": "rain", "group": "weather", "score": 0.65}]


def test_unreadable_audio_keeps_the_prompt_categories():
    assert {c["name"] for c in categorize("sfx", "heavy rain", wav=b"not audio")} == {"rain"}
