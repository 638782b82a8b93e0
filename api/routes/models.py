"""GET /v1/models: the active catalog, each model's limits and controls, and its state on each
live worker (from the workers' heartbeats)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CatalogDep, RedisDep, SettingsDep
from shared.domain import sampling
from shared.domain.catalog import checkpoint_present
from shared.domain.schemas import ModelList, ModelOut, ModelWorkerOut
from shared.infra import registry

router = APIRouter(tags=["models"])

# Most ready first: the model's overall state is the best one any worker reports.
_RANK = {"generating": 0, "ready": 0, "warming": 1, "loading": 2, "unloading": 3}


@router.get("/v1/models", response_model=ModelList)
def list_models(settings: SettingsDep, catalog: CatalogDep, redis: RedisDep) -> ModelList:
    """`loaded`: ready or generating on a live worker; `warming`/`loading`: on its way;
    `available`: weights present; `missing`: download needed. `workers` lists each worker's copy."""
    try:
        live = registry.workers(redis)
    except Exception:
        live = []
    per_model: dict[str, list[ModelWorkerOut]] = {}
    for w in live:
        for m in w.get("models") or []:
            try:
                per_model.setdefault(m["model"], []).append(
                    ModelWorkerOut(
                        worker=w.get("name", "?"),
                        device=w.get("device", "?"),
                        **{k: v for k, v in m.items() if k in ModelWorkerOut.model_fields},
                    )
                )
            except (KeyError, TypeError, ValueError):  # an older or newer worker's heartbeat: skip the entry
                continue
    models = []
    for spec in catalog.values():
        copies = sorted(per_model.get(spec.id, []), key=lambda c: (_RANK.get(c.state, 9), c.worker))
        state: Any  # one of ModelOut.state's literals
        if copies and copies[0].state in _RANK:
            best = copies[0].state
            state = "loaded" if best in ("ready", "generating") else best
        else:
            state = "available" if checkpoint_present(spec, settings) else "missing"
        models.append(
            ModelOut(
                id=spec.id,
                kind=spec.kind,
                family=spec.family,
                hub_id=spec.hub_id,
                queue=spec.queue,
                sample_rate=spec.sample_rate,
                min_duration=spec.min_duration,
                max_duration=spec.max_duration,
                durations=list(spec.fixed_durations) or None,
                default_duration=spec.default_duration if spec.uses_duration else None,
                window_seconds=spec.window_seconds,
                memory_estimate_bytes=spec.memory_bytes(1),
                controls=sampling.describe(spec),
                state=state,
                workers=copies,
                description=spec.description,
            )
        )
    return ModelList(catalog=settings.catalog, models=models)
