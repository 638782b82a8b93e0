"""JobParams: what a job row stores is what the worker reads back, across versions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.domain import sampling
from shared.domain.catalog import get_catalog
from shared.domain.errors import InvalidField
from shared.domain.params import JobParams, params_for
from shared.domain.schemas import GenerationCreate
from shared.domain.tiers import DEFAULT_TIERS
from shared.settings import Settings

CATALOG = get_catalog(Settings(catalog="tiny"))


def test_a_row_round_trips_and_unset_optional_fields_are_not_stored():
    params = JobParams(prompt="rain on a tin roof", duration=4, seed=3, loopable=True)
    row = params.to_row()
    assert row == {"prompt": "rain on a tin roof", "duration": 4.0, "seed": 3, "loopable": True}
    assert JobParams.from_row(row) == params


def test_rows_from_other_versions_still_read():
    older = {"prompt": "hello", "duration": None, "seed": 9, "loopable": False}  # before "voice" was stored
    assert JobParams.from_row(older).voice is None
    newer = {**older, "voice": "en_US-joe-medium", "a_future_control": 0.5}  # a field this code does not know
    assert JobParams.from_row(newer).voice == "en_US-joe-medium"


def test_a_row_must_make_sense():
    with pytest.raises(ValidationError):
        JobParams.from_row({"prompt": "x", "seed": -1})
    with pytest.raises(ValidationError):
        JobParams.from_row({"duration": 2, "seed": 1})


def test_defaults_and_limits_come_from_the_model_and_the_tier():
    free = DEFAULT_TIERS["free"]
    made = params_for(
        GenerationCreate(model="magnet", prompt="a synth arpeggio", seed=5), CATALOG["magnet"], "free", free
    )
    # MAGNeT makes its checkpoint's fixed length; its sampling controls are stored resolved to the defaults.
    defaults = {name: c.default for name, c in sampling.controls_for(CATALOG["magnet"]).items()}
    assert made == JobParams(prompt="a synth arpeggio", duration=CATALOG["magnet"].default_duration, seed=5, **defaults)
    assert made.duration == 10.0 and made.controls() == defaults
    tiny_tier = free.model_copy(update={"max_duration": 3})
    with pytest.raises(InvalidField, match="between 1 and 3 seconds for the small tier"):
        params_for(
            GenerationCreate(model="music", prompt="a long piece", duration=5), CATALOG["music"], "small", tiny_tier
        )
    speech = params_for(GenerationCreate(model="voice", prompt="Hello there.", seed=1), CATALOG["voice"], "free", free)
    assert speech.duration is None and speech.voice == CATALOG["voice"].checkpoint
