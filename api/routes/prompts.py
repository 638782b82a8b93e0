"""POST /v1/prompts/check: the prompt guidance of shared/domain/prompts.py, before generating."""

from __future__ import annotations

from fastapi import APIRouter

from shared.domain.prompts import check_prompt
from shared.domain.schemas import PromptCheck, PromptCheckOut

router = APIRouter(tags=["prompts"])


@router.post("/v1/prompts/check", response_model=PromptCheckOut)
def check(body: PromptCheck) -> PromptCheckOut:
    """Warnings for the common mistakes (too_vague, too_complex, contradictory, non_audio; also
    ambiguous_model, model_mismatch, describes_speech), each with an explanation and an example;
    suggestions of what the prompt lacks; for `"model": "auto"` the model a generation would use
    and why. The same warnings are recorded on every submitted job; they never block."""
    result = check_prompt(body.prompt, body.model)
    model = None if result.model is None else {"chosen": result.model["chosen"], "reason": result.model["reason"]}
    return PromptCheckOut.model_validate(
        {"warnings": result.warnings, "suggestions": result.suggestions, "model": model}
    )
