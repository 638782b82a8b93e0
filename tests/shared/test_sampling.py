"""Sampling controls and MAGNeT's fixed lengths: defaults, bounds, combinations, per model."""

from __future__ import annotations

import pytest

from shared.domain.catalog import get_catalog
from shared.domain.sampling import InvalidField, check_duration, describe, job_controls, resolve_controls
from shared.settings import Settings


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: get_catalog(Settings(catalog=name, models_dir=root)) for name in ("default", "tiny")}


def test_defaults_are_audiocrafts(catalogs):
    default = catalogs["default"]
    assert resolve_controls(default["music"], {}) == {"top_k": 250, "top_p": 0.0, "temperature": 1.0, "cfg_coef": 3.0}
    assert resolve_controls(default["audio"], {}) == {"top_k": 250, "top_p": 0.0, "temperature": 1.0, "cfg_coef": 3.0}
    assert resolve_controls(default["magnet"], {}) == {
        "top_k": 0,
        "top_p": 0.9,
        "temperature": 3.0,
        "cfg_coef": 10.0,
        "decoding_steps": [20, 10, 10, 10],
    }
    assert resolve_controls(default["voice"], {}) == {}
    assert describe(default["music"])["top_k"]["maximum"] == 2048  # the real codebook
    assert describe(catalogs["tiny"]["music"])["top_k"]["maximum"] == 256  # the tiny one


def test_one_of_top_k_and_top_p_steps_aside(catalogs):
    music, magnet = catalogs["default"]["music"], catalogs["default"]["magnet"]
    assert resolve_controls(music, {"top_p": 0.8})["top_k"] == 0
    assert resolve_controls(magnet, {"top_k": 40})["top_p"] == 0.0
    assert resolve_controls(music, {"top_k": 0, "top_p": 0}) == {
        "top_k": 0,
        "top_p": 0.0,
        "temperature": 1.0,
        "cfg_coef": 3.0,
    }  # plain sampling
    with pytest.raises(InvalidField) as caught:
        resolve_controls(music, {"top_k": 40, "top_p": 0.8})
    assert caught.value.field == "top_p" and "not both" in caught.value.message


@pytest.mark.parametrize(
    "model, given, field, words",
    [
        ("music", {"top_k": 2049}, "top_k", "at most 2048"),
        ("music", {"top_k": -1}, "top_k", "at least 0"),
        ("music", {"top_k": 3.5}, "top_k", "whole number"),
        ("music", {"temperature": float("nan")}, "temperature", "finite"),
        ("music", {"temperature": 5.5}, "temperature", "at most 5"),
        ("audio", {"cfg_coef": 21}, "cfg_coef", "at most 20"),
        ("music", {"decoding_steps": [1, 2, 3, 4]}, "decoding_steps", "does not take"),
        ("magnet", {"temperature": 0}, "temperature", "above 0"),
        ("magnet", {"cfg_coef": 0.5}, "cfg_coef", "at least 1"),
        ("magnet", {"decoding_steps": [10, 10, 10]}, "decoding_steps", "list of 4"),
        ("magnet", {"decoding_steps": [10, 10, 10, 500]}, "decoding_steps", "from 1 to 200"),
        ("magnet", {"decoding_steps": [10, True, 10, 10]}, "decoding_steps", "whole number"),
        ("voice", {"top_p": 0.5}, "top_p", "takes no sampling controls"),
    ],
)
def test_bad_values_name_the_field(catalogs, model, given, field, words):
    with pytest.raises(InvalidField) as caught:
        resolve_controls(catalogs["default"][model], given)
    assert caught.value.field == field and words in caught.value.message, caught.value.message


def test_magnet_lengths(catalogs, tmp_path):
    magnet = catalogs["default"]["magnet"]
    assert magnet.fixed_durations == (10.0,) and magnet.default_duration == 10.0
    check_duration(magnet, 10.0)
    check_duration(magnet, None)
    with pytest.raises(InvalidField, match="exactly 10 seconds") as caught:
        check_duration(magnet, 8)
    assert caught.value.field == "duration"
    thirty = get_catalog(
        Settings(catalog="default", models_dir=tmp_path, magnet_checkpoint="facebook/magnet-small-30secs")
    )["magnet"]
    assert thirty.fixed_durations == (30.0,) and thirty.max_duration == 30
    check_duration(catalogs["default"]["music"], 77)  # no fixed lengths: the range check applies elsewhere


def test_job_controls_reads_params():
    assert job_controls({"prompt": "x", "top_k": 5, "top_p": None, "cfg_coef": 2.0}) == {"top_k": 5, "cfg_coef": 2.0}
