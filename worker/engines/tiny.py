"""The tiny catalog: small random-weight checkpoints of the real audiocraft model classes.

``ensure_tiny_checkpoints(root)`` writes ``root/{musicgen,audiogen,magnet}``, each holding
``compression_state_dict.bin`` and ``state_dict.bin`` in audiocraft's exported format
(``{'xp.cfg': <YAML>, 'best_state': <state dict>}``), so they load through the very same
``get_pretrained(<dir>)`` path as real checkpoints. The configs have the shape of the
released ones (EnCodec + SEANet + RVQ, transformer LM, delay/parallel codebook patterns,
conditioners, fuser, classifier-free guidance) with tiny dimensions. The text conditioner is
a lookup table with the ``noop`` tokenizer, which needs no spaCy model download.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from pathlib import Path
from typing import Any

FILES = ("compression_state_dict.bin", "state_dict.bin")
FRAME_RATE = 50  # tokens per second, as in the released checkpoints
CARD = 256  # codebook size (released: 2048); generation samples with top_k=250 by default
N_Q = 4  # codebooks (as in the released models)
SEED = 1234

# family -> (sample rate, SEANet ratios giving FRAME_RATE, training segment duration in seconds)
FAMILIES: dict[str, tuple[int, list[int], int]] = {
    "musicgen": (32000, [8, 5, 4, 4], 30),
    "audiogen": (16000, [5, 4, 4, 4], 10),
    "magnet": (32000, [8, 5, 4, 4], 10),
}


def ensure_tiny_checkpoints(root: Path) -> None:
    """Create the tiny checkpoints under ``root`` unless present (atomic, safe across processes)."""
    root = Path(root)
    if _all_present(root):
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be creating them right now
        try:
            for family in FAMILIES:
                target = root / family
                if _present(target):
                    continue
                tmp = Path(tempfile.mkdtemp(prefix=f".{family}-", dir=root))
                try:
                    _write_checkpoint(family, tmp)
                    tmp.chmod(0o755)  # mkdtemp makes it private
                    if target.exists():  # incomplete leftovers: this directory is ours to replace
                        shutil.rmtree(target)
                    tmp.rename(target)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _present(directory: Path) -> bool:
    return all((directory / f).is_file() for f in FILES)


def _all_present(root: Path) -> bool:
    return all(_present(root / family) for family in FAMILIES)


def compression_config(family: str) -> dict[str, Any]:
    """EnCodec config shaped like the released 32 kHz / 16 kHz ones, with tiny SEANet and RVQ."""
    sample_rate, ratios, _ = FAMILIES[family]
    return {
        "device": "cpu",
        "dtype": "float32",
        "sample_rate": sample_rate,
        "channels": 1,
        "compression_model": "encodec",
        "encodec": {
            "autoencoder": "seanet",
            "quantizer": "rvq",
            "sample_rate": sample_rate,
            "channels": 1,
            "causal": False,
            "renormalize": False,
        },
        "seanet": {
            "dimension": 32,
            "channels": 1,
            "causal": False,
            "n_filters": 4,
            "n_residual_layers": 1,
            "ratios": ratios,
            "activation": "ELU",
            "activation_params": {"alpha": 1.0},
            "norm": "weight_norm",
            "norm_params": {},
            "kernel_size": 7,
            "residual_kernel_size": 3,
            "last_kernel_size": 7,
            "dilation_base": 2,
            "pad_mode": "constant",
            "true_skip": True,
            "compress": 2,
            "lstm": 1,
            "disable_norm_outer_blocks": 0,
            "encoder": {},
            "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
        },
        "rvq": {
            "n_q": N_Q,
            "q_dropout": False,
            "bins": CARD,
            "decay": 0.99,
            "kmeans_init": False,  # random codebooks: a fresh k-means one would be all zeros
            "kmeans_iters": 50,
            "threshold_ema_dead_code": 2,
            "orthogonal_reg_weight": 0.0,
            "orthogonal_reg_active_codes_only": False,
        },
        "no_quant": {},
    }


def lm_config(family: str) -> dict[str, Any]:
    """Transformer LM config shaped like musicgen_lm / audiogen_lm / magnet_32khz, with tiny dims."""
    sample_rate, _, segment_duration = FAMILIES[family]
    magnet = family == "magnet"
    transformer_lm: dict[str, Any] = {
        "dim": 32,
        "num_heads": 2,
        "num_layers": 2,
        "hidden_scale": 4,
        "n_q": N_Q,
        "card": CARD,
        "dropout": 0.0,
        "emb_lr": None,
        "activation": "gelu",
        "norm_first": True,
        "bias_ff": False,
        "bias_attn": False,
        "bias_proj": False,
        "past_context": None,
        "causal": not magnet,
        "custom": False,
        "memory_efficient": True,
        "attention_as_float32": False,
        "layer_scale": None,
        "positional_embedding": "sin",
        "xpos": False,
        "checkpointing": "none",
        "weight_init": "gaussian",
        "depthwise_init": "current",
        "zero_bias_init": True,
        "norm": "layer_norm",
        "cross_attention": False,
        "qk_layer_norm": False,
        "qk_layer_norm_cross": False,
        "attention_dropout": None,
        "kv_repeat": 1,
        "two_step_cfg": False,
    }
    if magnet:
        # The loader overwrites the last three from the compression model, dataset and masking.
        transformer_lm.update(
            subcodes_context=5, compression_model_framerate=FRAME_RATE, segment_duration=segment_duration, span_len=3
        )
        pattern = {"modeling": "parallel", "parallel": {"empty_initial": -1}}
    else:
        pattern = {"modeling": "delay", "delay": {"delays": list(range(N_Q)), "flatten_first": 0, "empty_initial": 0}}
    cfg: dict[str, Any] = {
        "device": "cpu",
        "dtype": "float32",
        "sample_rate": sample_rate,
        "channels": 1,
        "lm_model": "transformer_lm_magnet" if magnet else "transformer_lm",
        "codebooks_pattern": pattern,
        "transformer_lm": transformer_lm,
        "classifier_free_guidance": {"training_dropout": 0.1 if family == "audiogen" else 0.3, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {
            "cross_attention_pos_emb": False,
            "cross_attention_pos_emb_scale": 1,
            "sum": [],
            "prepend": [],
            "cross": ["description"],
            "input_interpolate": [],
        },
        "conditioners": {"description": {"model": "lut", "lut": {"n_bins": 256, "dim": 32, "tokenizer": "noop"}}},
        "dataset": {"segment_duration": segment_duration},
    }
    if magnet:
        cfg["masking"] = {"span_len": 3}
    return cfg


def _write_checkpoint(family: str, directory: Path) -> None:
    """Build both models of ``family`` with a fixed seed and save them in the exported format."""
    import torch
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + list(FAMILIES).index(family))
        for filename, cfg_dict, build in (
            ("compression_state_dict.bin", compression_config(family), builders.get_compression_model),
            ("state_dict.bin", lm_config(family), builders.get_lm_model),
        ):
            cfg = OmegaConf.create(cfg_dict)
            model = build(cfg)
            torch.save({"xp.cfg": OmegaConf.to_yaml(cfg), "best_state": model.state_dict()}, directory / filename)
