"""The analyzer on a labeled corpus it was not tuned on.

Thresholds were chosen on ``TUNE_SEEDS`` of tests/shared/audio_corpus.py; this measures them on
``HELD_OUT_SEEDS`` (different clips, levels, rates, defect parameters): at least 95% of
defective clips flagged and at most 5% of good ones, for every kind.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from shared.audio.quality import analyze, thresholds_for
from tests.shared.audio_corpus import DEFECTS_FOR, HELD_OUT_SEEDS, KINDS, TUNE_SEEDS, corpus

# the analyzer's issue code for each injected defect
EXPECTED_CODE = {"silence": "silence", "clipping": "clipping", "broad_noise": "noise_like", "hiss": "hf_noise",
                 "dc_offset": "dc_offset", "dropout": "dropout", "early_stop": "early_stop",
                 "stuck_tone": "stuck_tone", "clicks": "clicks"}


@pytest.fixture(scope="module")
def held_out():
    assert not set(TUNE_SEEDS) & set(HELD_OUT_SEEDS)
    results = []
    for clip in corpus(HELD_OUT_SEEDS):
        report = analyze(clip.samples, clip.sample_rate, clip.kind, thresholds_for(clip.kind))
        results.append((clip, report))
    return results


def test_corpus_covers_every_kind_rate_and_defect(held_out):
    seen = Counter((c.kind, c.defect) for c, _ in held_out)
    for kind in KINDS:
        assert seen[(kind, None)] >= 40
        for defect in DEFECTS_FOR[kind]:
            assert seen[(kind, defect)] >= 3, (kind, defect)
    assert {c.sample_rate for c, _ in held_out} == {16000, 22050, 32000, 44100, 48000}


def test_detection_and_false_positive_rates(held_out):
    flagged = defaultdict(list)
    for clip, report in held_out:
        flagged[(clip.kind, clip.defect is not None)].append(not report.is_good)
    lines = []
    for kind in KINDS:
        detection = sum(flagged[(kind, True)]) / len(flagged[(kind, True)])
        false_positive = sum(flagged[(kind, False)]) / len(flagged[(kind, False)])
        lines.append(f"{kind}: detection {detection:.1%} of {len(flagged[(kind, True)])}, "
                     f"false positives {false_positive:.1%} of {len(flagged[(kind, False)])}")
        assert detection >= 0.95, lines
        assert false_positive <= 0.05, lines
    print("\n" + "\n".join(lines))


def test_defects_are_flagged_for_the_right_reason(held_out):
    caught = [(clip, report) for clip, report in held_out if clip.defect is not None and not report.is_good]
    right = [clip for clip, report in caught if EXPECTED_CODE[clip.defect] in {i.code for i in report.issues}]
    assert len(right) >= 0.9 * len(caught)
    per_defect = Counter(clip.defect for clip in right)
    totals = Counter(clip.defect for clip, _ in held_out if clip.defect is not None)
    for defect, total in totals.items():
        assert per_defect[defect] >= 0.8 * total, (defect, per_defect[defect], total)


def test_every_flag_fails_the_clip_and_good_clips_score_100(held_out):
    for _clip, report in held_out:
        assert report.is_good == (not report.issues)
        assert report.score == 100.0 if report.is_good else report.score < 50
