"""GET /v1/models: the active catalog and each model's state."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CatalogDep, RedisDep, SettingsDep
from shared.infra import registry
from shared.domain.catalog import checkpoint_present
from shared.domain.schemas import ModelList, ModelOut

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList)
def list_models(settings: SettingsDep, catalog: CatalogDep, redis: RedisDep) -> ModelList:
    """`loaded`: a live worker holds it in memory; `available`: weights present; `missing`: download needed."""
    try:
        loaded = {m for w in registry.workers(redis) for m in w.get("loaded", [])}
    except Exception:
        loaded = set()
    models = []
    for spec in catalog.values():
        state = "loaded" if spec.id in loaded else "available" if checkpoint_present(spec, settings) else "missing"
        models.append(ModelOut(id=spec.id, kind=spec.kind, family=spec.family, checkpoint=spec.checkpoint,
                               queue=spec.queue, sample_rate=spec.sample_rate, min_duration=spec.min_duration,
                               max_duration=spec.max_duration, state=state, description=spec.description))
    return ModelList(catalog=settings.catalog, models=models)
