"""``--backbone-activation auto``: fp16 storage is not evidence of OpenAI weights; the choice and
its reason are printed once per load.

Reproduced on main: a GELU checkpoint saved in half precision (common for LAION / fine-tuned
open_clip weights) was run with QuickGELU, moving every output.
"""

from __future__ import annotations

import json
import logging

import open_clip
import torch

from adaptclip_med.model.build import build_backbone
from adaptclip_med.model.backbone_source import (
    BackboneSpec,
    choose_activation,
    ensure_packaged_configs_registered,
    read_state_dict,
    resolve_architecture,
)
from tests.support.tiny_models import TINY


def _gelu_architecture(tmp_path):
    """The tiny architecture as a GELU config (the packaged one says QuickGELU)."""
    ensure_packaged_configs_registered()
    config = dict(open_clip.get_model_config(TINY))
    config.pop("quick_gelu", None)
    path = tmp_path / "tiny-gelu.json"
    path.write_text(json.dumps(config))
    return path


def _save(model, path, fp16):
    torch.save({k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in model.state_dict().items()}, path)
    return path


def test_a_gelu_checkpoint_saved_in_fp16_keeps_gelu(tmp_path, caplog):
    config = _gelu_architecture(tmp_path)
    name, _ = resolve_architecture(str(config))
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None, load_weights=False)
    half = _save(model, tmp_path / "laion_style_fp16.pt", fp16=True)
    full = _save(model, tmp_path / "laion_style_fp32.pt", fp16=False)
    state, hint = read_state_dict(half)
    assert not hint  # fp16 storage alone says nothing about the origin
    with caplog.at_level(logging.INFO, logger="adaptclip_med.model.backbone"):
        a = build_backbone(BackboneSpec(str(config), str(half)))
    b = build_backbone(BackboneSpec(str(config), str(full)))
    assert a.identity.activation == b.identity.activation == "gelu"
    x = torch.randn(1, 3, 56, 56)
    torch.testing.assert_close(a.encode_image(x).global_token, b.encode_image(x).global_token, atol=5e-3, rtol=5e-3)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backbone tiny-gelu [file:laion_style_fp16")]
    assert len(lines) == 1 and ": gelu because " in lines[0] and "assuming the config's GELU" in lines[0]


def test_an_architecture_with_only_non_openai_weights_gets_gelu_with_its_reason():
    name, config = resolve_architecture("ViT-B-16-plus-240")
    choice = choose_activation(name, config, "/x/finetuned_fp16.pt", "auto", openai_layout_hint=False)
    assert (choice.activation, choice.certain) == ("gelu", True)
    assert choice.reason == "ViT-B-16-plus-240's published weights are all non-OpenAI (laion400m_e31, laion400m_e32)"


def test_each_rule_says_why():
    name, config = resolve_architecture("ViT-L-14-336")
    assert choose_activation(name, config, "openai").reason == "OpenAI weights (trained with QuickGELU)"
    assert choose_activation(name, config, "/x/w.pt").reason == "ViT-L-14-336's only published weights are OpenAI's"
    assert choose_activation(name, config, "/x/w.pt", "gelu").activation == "gelu"
    name, config = resolve_architecture("ViT-L-14")
    layout = choose_activation(name, config, "/x/w.pt", openai_layout_hint=True)
    assert layout.activation == "quickgelu" and "original OpenAI layout" in layout.reason
