"""What a job asks the worker for: ``JobParams``, fixed at submit (the seed included) and stored
as the job row's ``params`` JSON; the worker reads it back as this model.

Adding an optional control (a sampling knob, say) is one typed field defaulting to ``None``:
fields left ``None`` are not stored, so rows written before the field existed read the same.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain import sampling
from shared.domain.catalog import ModelSpec
from shared.domain.errors import InvalidField
from shared.domain.schemas import PROMPT_MAX, GenerationCreate
from shared.domain.tiers import TierLimits

SEED_MAX = 2**31 - 1
ALWAYS_STORED = frozenset({"prompt", "duration", "seed", "loopable"})  # stored even when None


class JobParams(BaseModel):
    # "ignore": a row written by a newer API (with a field this worker does not know yet) still runs.
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt: str = Field(min_length=1)
    duration: float | None = Field(None, gt=0, description="Seconds; None for speech (the text decides).")
    seed: int = Field(ge=0, le=SEED_MAX)
    loopable: bool = False
    voice: str | None = Field(None, description="Piper voice id (voice model only).")
    # Sampling controls (shared/domain/sampling.py), resolved at submit against the model's bounds.
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    cfg_coef: float | None = None
    decoding_steps: list[int] | None = None

    def to_row(self) -> dict[str, Any]:
        """The JSON stored in ``jobs.params`` (and shown as the job's ``params``)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None or k in ALWAYS_STORED}

    def controls(self) -> dict[str, Any]:
        """The sampling controls set for this job (the engine's generation parameters)."""
        return sampling.job_controls(self.model_dump())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobParams:
        return cls.model_validate(row)


def params_for(request: GenerationCreate, spec: ModelSpec, tier_name: str, tier: TierLimits) -> JobParams:
    """Check the per-model and per-tier rules pydantic cannot know (``InvalidField`` names the
    field), and fix the parameters the worker will use. The seed is fixed here, so a job's
    attempts are reproducible."""
    controls = sampling.check_request(request, spec)  # sampling controls and fixed clip lengths
    if spec.uses_duration:
        if len(request.prompt) > PROMPT_MAX:
            raise InvalidField(
                "prompt", f"must be at most {PROMPT_MAX} characters for model '{spec.id}'", len(request.prompt)
            )
        if request.voice is not None:
            raise InvalidField("voice", "only the 'voice' model takes a voice", request.voice)
        longest = min(spec.max_duration, tier.max_duration)
        duration: float | None = min(spec.default_duration, longest) if request.duration is None else request.duration
        assert duration is not None
        if not spec.min_duration <= duration <= longest:
            whose = f"model '{spec.id}'" if longest == spec.max_duration else f"the {tier_name} tier"
            raise InvalidField(
                "duration",
                f"must be between {spec.min_duration:g} and {longest:g} seconds for {whose}",
                request.duration,
            )
        voice = None
    else:
        duration = None
        if request.loopable:
            raise InvalidField("loopable", "speech cannot be made loopable", request.loopable)
        voice = request.voice or spec.checkpoint
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    return JobParams(
        prompt=request.prompt, duration=duration, seed=seed, loopable=request.loopable, voice=voice, **controls
    )
