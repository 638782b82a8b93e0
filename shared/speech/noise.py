"""Deterministic noise for Piper voices.

A Piper (VITS) voice samples Gaussian noise inside its ONNX graph (``RandomNormalLike`` in the
duration predictor and before the flow). ONNX Runtime seeds those ops once per session, so the
same text comes out slightly different on every call. :func:`make_noise_an_input` rewrites each
such op into "tile a noise tensor to the shape asked for and slice it", with the noise tensor a
graph input. The caller feeds :func:`noise_for` (seed), so the same text, voice, options and
seed always give the same audio, and a different seed gives a different rendition. The
rewritten graph needs the noise fed on every run (Piper's own ``PiperVoice.synthesize`` does not feed it; use
:class:`shared.speech.synth.Utterance`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

NOISE_INPUT = "soundbox_noise"
# (batch, channels, frames): VITS noise is (batch, channels <= 192, time). The tensor is tiled
# along every axis, so a larger request still works; 2048 frames is ~24 s at 22.05 kHz / 256.
NOISE_SHAPE = (1, 192, 2048)
DEFAULT_SEED = 0


@lru_cache(maxsize=16)
def noise_for(seed: int) -> np.ndarray:
    """The standard-normal noise tensor for ``seed`` (read-only, cached)."""
    noise = np.random.default_rng(seed).standard_normal(NOISE_SHAPE, dtype=np.float32)
    noise.setflags(write=False)
    return noise


def make_noise_an_input(model: Any) -> int:
    """Rewrite every ``RandomNormalLike`` of ``model`` (an ``onnx.ModelProto``, changed in place)
    to read :data:`NOISE_INPUT`. Returns how many ops were replaced (0: the model is unchanged).

    Each replaced op becomes ``Slice(Tile(noise, ceil(shape(x) / shape(noise))), 0, shape(x))``
    scaled and shifted by the op's own ``scale`` and ``mean``. Ops of another dtype than float
    are left alone.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if any(i.name == NOISE_INPUT for i in graph.input):
        return 0
    nodes, replaced = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "RandomNormalLike" or attrs.get("dtype", TensorProto.FLOAT) != TensorProto.FLOAT:
            nodes.append(node)
            continue
        p = f"{node.name or node.output[0]}/soundbox"
        x, out = node.input[0], node.output[0]
        mean, scale = float(attrs.get("mean", 0.0)), float(attrs.get("scale", 1.0))
        sliced = out if (mean, scale) == (0.0, 1.0) else p + "/sliced"
        nodes += [
            helper.make_node("Shape", [x], [p + "/shape"]),
            helper.make_node("Add", [p + "/shape", "soundbox_noise_shape_m1"], [p + "/up"]),
            helper.make_node("Div", [p + "/up", "soundbox_noise_shape"], [p + "/repeats"]),
            helper.make_node("Tile", [NOISE_INPUT, p + "/repeats"], [p + "/tiled"]),
            helper.make_node("Slice", [p + "/tiled", "soundbox_noise_starts", p + "/shape"], [sliced]),
        ]
        if sliced != out:
            nodes += [
                helper.make_node("Mul", [sliced, _const(graph, p + "/scale", scale)], [p + "/scaled"]),
                helper.make_node("Add", [p + "/scaled", _const(graph, p + "/mean", mean)], [out]),
            ]
        replaced += 1
    if not replaced:
        return 0
    shape = np.array(NOISE_SHAPE, dtype=np.int64)
    graph.initializer.extend(
        [
            numpy_helper.from_array(shape, "soundbox_noise_shape"),
            numpy_helper.from_array(shape - 1, "soundbox_noise_shape_m1"),
            numpy_helper.from_array(np.zeros(len(NOISE_SHAPE), dtype=np.int64), "soundbox_noise_starts"),
        ]
    )
    graph.input.append(helper.make_tensor_value_info(NOISE_INPUT, TensorProto.FLOAT, list(NOISE_SHAPE)))
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def _const(graph: Any, name: str, value: float) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
    return name


def remaining_random_ops(model: Any) -> list[str]:
    """Random ops still in the graph (their output varies from call to call)."""
    return sorted(
        {
            n.op_type
            for n in model.graph.node
            if n.op_type.startswith("Random") or n.op_type in ("Multinomial", "Bernoulli")
        }
    )
