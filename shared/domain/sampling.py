"""Sampling controls of a generation (top_k, top_p, temperature, cfg_coef, MAGNeT's decoding
steps) and the fixed clip lengths of MAGNeT: per-model defaults and bounds, and the checks a
request passes before it is queued.

The defaults are audiocraft's own (``set_generation_params`` of MusicGen, AudioGen and MAGNeT);
the bounds keep a request in the range where the library behaves. The API calls
:func:`check_request` when a job is submitted; the resolved values go into the job's params
under the same names, so the worker (and a replay with the same seed) samples exactly the same.
Pure data: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.domain.catalog import ModelSpec
from shared.domain.errors import InvalidField

CONTROL_NAMES = ("top_k", "top_p", "temperature", "cfg_coef", "decoding_steps")


@dataclass(frozen=True)
class Control:
    name: str
    kind: str  # "int", "float" or "int list"
    default: Any
    minimum: float
    maximum: float
    description: str
    exclusive_minimum: bool = False
    length: int | None = None  # for "int list": entries required

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.kind,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "description": self.description,
        }
        if self.exclusive_minimum:
            out["exclusive_minimum"] = True
        if self.length is not None:
            out["length"] = self.length
        return out


def controls_for(spec: ModelSpec) -> dict[str, Control]:
    """The sampling controls ``spec`` takes, by name (empty for speech)."""
    top_p = (
        "nucleus sampling: keep the smallest set of tokens whose probability reaches top_p; 0 turns it "
        "off (top_p > 0 overrides top_k)"
    )
    top_k = f"sample among the k most likely tokens (0: no top-k limit; at most the codebook size {spec.codebook_size})"
    if spec.family in ("musicgen", "audiogen"):
        return {
            c.name: c
            for c in (
                Control("top_k", "int", 250, 0, spec.codebook_size, top_k),
                Control("top_p", "float", 0.0, 0.0, 1.0, top_p),
                Control(
                    "temperature",
                    "float",
                    1.0,
                    0.0,
                    5.0,
                    "softmax temperature; 0 takes the most likely token (greedy), higher is more varied",
                ),
                Control(
                    "cfg_coef",
                    "float",
                    3.0,
                    0.0,
                    20.0,
                    "classifier-free guidance: how closely to follow the prompt (1: no guidance)",
                ),
            )
        }
    if spec.family == "magnet":
        return {
            c.name: c
            for c in (
                Control("top_k", "int", 0, 0, spec.codebook_size, top_k),
                Control("top_p", "float", 0.9, 0.0, 1.0, top_p),
                Control(
                    "temperature",
                    "float",
                    3.0,
                    0.0,
                    10.0,
                    "initial softmax temperature, annealed over the decoding steps",
                    exclusive_minimum=True,
                ),
                Control(
                    "cfg_coef",
                    "float",
                    10.0,
                    1.0,
                    20.0,
                    "classifier-free guidance at the first decoding step, "
                    "annealed down to 1 (audiocraft's max_cfg_coef)",
                ),
                Control(
                    "decoding_steps",
                    "int list",
                    [20, 10, 10, 10][: spec.codebooks] + [10] * (spec.codebooks - 4),
                    1,
                    200,
                    f"iterative decoding steps for each of the {spec.codebooks} codebooks",
                    length=spec.codebooks,
                ),
            )
        }
    return {}


def describe(spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """The controls of ``spec`` with defaults and bounds, for GET /v1/models."""
    return {name: c.to_dict() for name, c in controls_for(spec).items()}


def _check_number(c: Control, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidField(c.name, "must be a finite number", value)
    if c.kind == "int" and int(value) != value:
        raise InvalidField(c.name, "must be a whole number", value)
    low_ok = value > c.minimum if c.exclusive_minimum else value >= c.minimum
    if not low_ok or value > c.maximum:
        low = f"above {c.minimum:g}" if c.exclusive_minimum else f"at least {c.minimum:g}"
        raise InvalidField(c.name, f"must be {low} and at most {c.maximum:g}", value)
    return value


def resolve_controls(spec: ModelSpec, given: dict[str, Any]) -> dict[str, Any]:
    """The full set of control values for a job: ``given`` (name -> value, None = not given)
    checked against ``spec``'s bounds and combinations, the rest filled with its defaults.

    Raises :class:`InvalidField` naming the field at fault.
    """
    given = {k: v for k, v in given.items() if v is not None}
    controls = controls_for(spec)
    for name in given:
        if name not in CONTROL_NAMES:
            raise InvalidField(name, "is not a sampling control", given[name])
        if name not in controls:
            takes = ", ".join(controls) or "no sampling controls"
            raise InvalidField(name, f"model '{spec.id}' does not take {name} (it takes {takes})", given[name])
    out: dict[str, Any] = {}
    for name, c in controls.items():
        if name not in given:
            out[name] = list(c.default) if isinstance(c.default, list) else c.default
            continue
        value = given[name]
        if c.kind == "int list":
            if not isinstance(value, list) or len(value) != c.length:
                raise InvalidField(name, f"must be a list of {c.length} whole numbers, one per codebook", value)
            for v in value:
                if isinstance(v, bool) or not isinstance(v, int) or not c.minimum <= v <= c.maximum:
                    raise InvalidField(
                        name, f"each entry must be a whole number from {c.minimum:g} to {c.maximum:g}", value
                    )
            out[name] = [int(v) for v in value]
        else:
            number = _check_number(c, value)
            out[name] = int(number) if c.kind == "int" else float(number)
    # top_p > 0 overrides top_k in audiocraft's sampler: asking for both is a contradiction, and
    # asking for one makes the other step aside, so the stored values say what is sampled.
    if "top_k" in controls:
        k_given, p_given = "top_k" in given, "top_p" in given
        if k_given and p_given and out["top_k"] > 0 and out["top_p"] > 0:
            raise InvalidField(
                "top_p",
                "set top_k or top_p, not both (top_p > 0 overrides top_k; give top_p 0 to sample with top_k)",
                given["top_p"],
            )
        if p_given and out["top_p"] > 0:
            out["top_k"] = 0
        elif k_given and out["top_k"] > 0:
            out["top_p"] = 0.0
    return out


def check_duration(spec: ModelSpec, duration: float | None) -> None:
    """A model of fixed clip lengths (MAGNeT) takes only those; None gets the default later."""
    if (
        spec.fixed_durations
        and duration is not None
        and not any(math.isclose(duration, d, abs_tol=1e-6) for d in spec.fixed_durations)
    ):
        lengths = " or ".join(f"{d:g}" for d in spec.fixed_durations)
        raise InvalidField(
            "duration",
            f"model '{spec.id}' makes clips of exactly {lengths} seconds (its "
            f"checkpoint's fixed length); got {duration:g}",
            duration,
        )


def check_request(body: Any, spec: ModelSpec) -> dict[str, Any]:
    """The submit route's hook: check a GenerationCreate's duration and controls for ``spec``
    and return the control values to store in the job's params. Raises :class:`InvalidField`."""
    if spec.uses_duration:
        check_duration(spec, body.duration)
    return resolve_controls(spec, {name: getattr(body, name, None) for name in CONTROL_NAMES})


def job_controls(params: dict[str, Any]) -> dict[str, Any]:
    """The control values stored in a job's params (the worker passes them to the engine)."""
    return {name: params[name] for name in CONTROL_NAMES if params.get(name) is not None}
