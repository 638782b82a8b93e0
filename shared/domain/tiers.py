"""Account tiers: what each may ask for. Defaults follow the original application;
override the whole table with SOUNDBOX_TIERS (JSON)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

DEFAULT_TIER = "free"  # new and anonymous accounts; the fallback for a tier no longer configured


class TierLimits(BaseModel):
    max_duration: float = Field(gt=0, description="Longest clip in seconds (never above the model's own limit).")
    max_pending: int = Field(ge=1, description="Jobs queued or running at once.")
    jobs_per_hour: int = Field(ge=1, description="Jobs submitted in any rolling hour.")
    priority_min: int = Field(ge=0, le=9)
    priority_max: int = Field(ge=0, le=9)

    @model_validator(mode="after")
    def _range(self) -> TierLimits:
        if self.priority_min > self.priority_max:
            raise ValueError("priority_min must not exceed priority_max")
        return self

    def clamp_priority(self, priority: int) -> int:
        return max(self.priority_min, min(self.priority_max, priority))


DEFAULT_TIERS: dict[str, TierLimits] = {
    DEFAULT_TIER: TierLimits(max_duration=60, max_pending=3, jobs_per_hour=60, priority_min=0, priority_max=4),
    "supporter": TierLimits(max_duration=60, max_pending=5, jobs_per_hour=120, priority_min=0, priority_max=5),
    "premium": TierLimits(max_duration=120, max_pending=10, jobs_per_hour=300, priority_min=0, priority_max=7),
    "creator": TierLimits(max_duration=180, max_pending=20, jobs_per_hour=600, priority_min=0, priority_max=9),
}
TIER_NAMES = tuple(DEFAULT_TIERS)  # the default table's names; SOUNDBOX_TIERS may name others


def limits_for(tiers: dict[str, TierLimits], name: str) -> TierLimits:
    """The limits of tier ``name`` in the configured table (``DEFAULT_TIER``'s for an unknown one)."""
    return tiers.get(name) or tiers[DEFAULT_TIER]


def check_tier(tiers: dict[str, TierLimits], name: str) -> str:
    """``name`` when the configured table has it; ValueError naming the tiers there otherwise."""
    if name not in tiers:
        raise ValueError(f"unknown tier {name!r}; configured tiers: {', '.join(tiers)}")
    return name
