"""Precision selection and the bf16 path (model/precision.py) on the tiny model."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.model.precision import apply_precision, cpu_flags, current_precision, resolve_precision

CPU = torch.device("cpu")
#: Documented in docs/performance.md: the largest bf16-vs-fp32 difference accepted in a final
#: (smoothed, fused) anomaly map, and in a slice score.
BF16_MAP_TOLERANCE = 2e-2
BF16_SCORE_TOLERANCE = 5e-3


@pytest.mark.parametrize("flags, expected", [
    (frozenset({"avx2", "amx_bf16", "amx_tile"}), "bf16"),
    (frozenset({"avx512f", "avx512_bf16"}), "bf16"),
    (frozenset({"avx2", "fma", "avx512f"}), "fp32"),
    (frozenset(), "fp32"),
])
def test_auto_picks_bf16_only_with_native_bf16_on_cpu(flags, expected):
    chosen, reason = resolve_precision("auto", CPU, flags)
    assert chosen == expected
    assert reason.startswith("auto: ")


def test_explicit_modes_are_kept_and_unknown_ones_refused(caplog):
    assert resolve_precision("fp32", CPU, frozenset({"amx_bf16"}))[0] == "fp32"
    with caplog.at_level(logging.WARNING, logger="adaptclip_med.model.precision"):
        assert resolve_precision("bf16", CPU, frozenset({"avx2"}))[0] == "bf16"
    assert "slower than fp32" in caplog.text
    with caplog.at_level(logging.WARNING, logger="adaptclip_med.model.precision"):
        assert resolve_precision("fp16", CPU)[0] == "fp16"
    assert "meant for GPUs" in caplog.text
    with pytest.raises(AdaptClipError, match="precision 'fp8' is not one of fp32, bf16, fp16, auto"):
        resolve_precision("fp8", CPU)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "amx_bf16"})
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_apply_precision_converts_only_the_vision_block_matmuls(tiny_model, caplog):
    model = copy.deepcopy(tiny_model)
    with caplog.at_level(logging.INFO, logger="adaptclip_med.model.precision"):
        assert apply_precision(model, "bf16") == "bf16"
    assert "inference precision bf16" in caplog.text
    visual = model.backbone.clip.visual
    block = visual.transformer.resblocks[0]
    assert block.attn.in_proj_weight.dtype == block.mlp.c_fc.weight.dtype == torch.bfloat16
    kept_fp32 = [block.ln_1.weight, visual.ln_post.weight, visual.proj, visual.conv1.weight,
                 model.backbone.clip.token_embedding.weight, *model.prompt_query.parameters(), *model.visual.parameters()]
    assert all(t.dtype == torch.float32 for t in kept_fp32)
    assert current_precision(model) == "bf16"
    with pytest.raises(AdaptClipError, match="converted to bf16 and cannot become fp32"):
        apply_precision(model, "fp32")
    with pytest.raises(AdaptClipError, match="converted to bf16 and cannot become fp16"):
        apply_precision(model, "fp16")


def test_fp16_converts_the_same_matmuls(tiny_model):
    model = copy.deepcopy(tiny_model)
    assert apply_precision(model, "fp16") == "fp16"
    block = model.backbone.clip.visual.transformer.resblocks[0]
    assert block.attn.in_proj_weight.dtype == block.mlp.c_fc.weight.dtype == torch.float16
    assert model.backbone.clip.visual.conv1.weight.dtype == torch.float32 and current_precision(model) == "fp16"


def test_auto_on_cuda_follows_compute_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert resolve_precision("auto", torch.device("cuda"))[0] == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    chosen, reason = resolve_precision("auto", torch.device("cuda"))
    assert chosen == "fp32" and "compute capability 7.5" in reason


def test_fp32_request_leaves_the_model_untouched(tiny_model):
    model = copy.deepcopy(tiny_model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert apply_precision(model, "fp32") == "fp32"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bf16_maps_stay_within_the_documented_tolerance(tiny_model, images):
    references = images[3:]
    queries = images[:3]
    fp32 = tiny_model.predict(queries, tiny_model.encode_references(references))
    model = copy.deepcopy(tiny_model)
    apply_precision(model, "bf16")
    bf16 = model.predict(queries, model.encode_references(references))
    assert bf16.anomaly_map.dtype == torch.float32  # adapters and fusion stay fp32
    difference = (fp32.anomaly_map - bf16.anomaly_map).abs()
    assert float(difference.max()) < BF16_MAP_TOLERANCE
    assert float(difference.max()) > 0  # the matmuls really ran in bf16
    assert float((fp32.score - bf16.score).abs().max()) < BF16_SCORE_TOLERANCE


def test_moving_a_model_moves_or_drops_its_caches(tiny_model, images):
    """A model used once and then moved (``.to("cuda")`` in real use) must not keep cached text
    features or position embeddings from before the move: here a dtype move stands in for the
    device move, which a CPU cannot show."""
    model = copy.deepcopy(tiny_model)
    model.predict(images[:1], None)  # fills the text caches
    assert model.textual._cached is not None and model.backbone._static_text is not None
    model.to(torch.float64)
    assert model.textual._cached is None and model.backbone._pos_cache == {}
    assert model.backbone._static_text.dtype == torch.float32  # moved, kept fp32, not recomputed
