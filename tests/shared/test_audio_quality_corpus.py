"""The analyzer on a labeled corpus it was not tuned on.

Thresholds were first chosen on ``TUNE_SEEDS`` of tests/shared/audio_corpus.py (and since
generalized on the second corpus, tests/shared/audio_corpus_b.py). Both halves are asserted:
``HELD_OUT_SEEDS`` (different clips, levels, rates, defect parameters) and the first 300 of
``TUNE_SEEDS`` (all 600 pass too; half keeps the run short): at least 95% of defective clips
flagged and at most 3% of good ones, for every kind.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from shared.audio.quality import analyze, thresholds_for
from tests.shared.audio_corpus import DEFECTS_FOR, HELD_OUT_SEEDS, KINDS, TUNE_SEEDS, corpus

# the analyzer's issue code for each injected defect
EXPECTED_CODE = {
    "silence": "silence",
    "clipping": "clipping",
    "broad_noise": "noise_like",
    "hiss": "hf_noise",
    "dc_offset": "dc_offset",
    "dropout": "dropout",
    "early_stop": "early_stop",
    "stuck_tone": "stuck_tone",
    "clicks": "clicks",
}


HALVES = {"held_out": HELD_OUT_SEEDS, "tune": TUNE_SEEDS[:300]}  # (half the tune range: run time)


@pytest.fixture(scope="module", params=sorted(HALVES))
def held_out(request):
    assert not set(TUNE_SEEDS) & set(HELD_OUT_SEEDS)
    results = []
    for clip in corpus(HALVES[request.param]):
        report = analyze(clip.samples, clip.sample_rate, clip.kind, thresholds_for(clip.kind))
        results.append((clip, report))
    return results


def test_corpus_covers_every_kind_rate_and_defect(held_out):
    seen = Counter((c.kind, c.defect) for c, _ in held_out)
    for kind in KINDS:
        assert seen[(kind, None)] >= 35
        for defect in DEFECTS_FOR[kind]:
            assert seen[(kind, defect)] >= (3 if len(held_out) >= 400 else 2), (kind, defect)
    assert {c.sample_rate for c, _ in held_out} == {16000, 22050, 32000, 44100, 48000}


def test_detection_and_false_positive_rates(held_out):
    flagged = defaultdict(list)
    for clip, report in held_out:
        flagged[(clip.kind, clip.defect is not None)].append(not report.is_good)
    lines = []
    for kind in KINDS:
        detection = sum(flagged[(kind, True)]) / len(flagged[(kind, True)])
        false_positive = sum(flagged[(kind, False)]) / len(flagged[(kind, False)])
        lines.append(
            f"{kind}: detection {detection:.1%} of {len(flagged[(kind, True)])}, "
            f"false positives {false_positive:.1%} of {len(flagged[(kind, False)])}"
        )
        assert detection >= 0.95, lines
        assert false_positive <= 0.03, lines
    print("\n" + "\n".join(lines))


def test_defects_are_flagged_for_the_right_reason(held_out):
    caught = [(clip, report) for clip, report in held_out if clip.defect is not None and not report.is_good]
    right = [clip for clip, report in caught if EXPECTED_CODE[clip.defect] in {i.code for i in report.failing}]
    assert len(right) >= 0.9 * len(caught)
    per_defect = Counter(clip.defect for clip in right)
    totals = Counter(clip.defect for clip, _ in held_out if clip.defect is not None)
    for defect, total in totals.items():
        assert per_defect[defect] >= 0.8 * total, (defect, per_defect[defect], total)


def test_every_failing_issue_fails_the_clip_and_scores_under_50(held_out):
    for _clip, report in held_out:
        assert report.is_good == (not report.failing)
        assert report.score >= 50 if report.is_good else report.score < 50
