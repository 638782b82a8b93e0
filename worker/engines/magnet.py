"""MAGNeT: non-autoregressive text to music over EnCodec 32 kHz tokens.

Its clip length is fixed by the checkpoint (``cfg.dataset.segment_duration``): it always
generates that much, and each clip is trimmed to its requested duration. The restricted
attention it needs runs through ``route_memory_efficient_attention_to_sdpa`` (applied by the
base class before loading).
"""

from __future__ import annotations

from typing import Any

from audiocraft.models import MAGNeT

from worker.engines.audiocraft_engine import AudiocraftEngine


class MagnetEngine(AudiocraftEngine):
    references = ("facebook/encodec_32khz", "t5-base")  # what facebook/magnet-small-10secs loads

    def load_pretrained(self, name: str) -> MAGNeT:
        return MAGNeT.get_pretrained(name, device=self.device)

    @property
    def segment_duration(self) -> float:
        return float(self.model.lm.cfg.dataset.segment_duration)

    def configure(self, seconds: float, controls: dict[str, Any]) -> None:
        if seconds > self.segment_duration:
            raise ValueError(
                f"MAGNeT {self.spec.hub_id or 'model'} makes at most {self.segment_duration:g} s, got {seconds:g} s"
            )
        names = {
            "top_k": "top_k",
            "top_p": "top_p",
            "temperature": "temperature",
            "cfg_coef": "max_cfg_coef",
            "decoding_steps": "decoding_steps",
        }
        self.model.set_generation_params(**{names[k]: v for k, v in controls.items() if k in names})
