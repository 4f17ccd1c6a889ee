"""``--adapters demo`` resolves to the packaged demo model, and the formula backbone computes the
patch descriptor its documentation states."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.methods.base import MethodSpec
from adaptclip_med.methods.registry import load_method
from adaptclip_med.model import demo_backbone
from adaptclip_med.model.build import build_backbone
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.preprocess import slices_to_model_input


def test_adapters_demo_resolves_backbone_size_and_checkpoint():
    method = load_method(MethodSpec(method="adaptclip", weights="demo"))
    identity = method.identity()
    assert identity["image_size"] == 256
    assert identity["backbone"]["architecture"] == demo_backbone.DEMO_ARCHITECTURE
    assert identity["backbone"]["weights"] == demo_backbone.weights_label()
    assert identity["weights"] == "demo_adapters.safetensors" and identity["weights_sha256"]


def test_demo_weights_on_another_architecture_is_a_one_line_error():
    with pytest.raises(AdaptClipError, match="exist only for adaptclip-demo-vit"):
        build_backbone(BackboneSpec("adaptclip-tiny-vit", "demo"))


def test_formula_features_are_sub_block_means_and_position():
    backbone = build_backbone(BackboneSpec(demo_backbone.DEMO_ARCHITECTURE, "demo"))
    grey = torch.full((1, 256, 256), 0.35)
    grey[0, :4, :4] = 0.85  # top-left 4x4 sub-block of the first patch
    taps = backbone.encode_image(slices_to_model_input(grey.numpy(), 256)).taps[0][0, 1:]
    gain = demo_backbone.INTENSITY_GAIN
    assert taps[0, 0].item() == pytest.approx(gain * 0.5, abs=0.05)  # the bright sub-block
    assert taps[0, 1:4].abs().max().item() < 0.05  # the other three sit at the grey offset
    assert taps[1, :4].abs().max().item() < 0.05
    # same content, different place: the position code makes them differ (far apart more)
    near = 1 - F.cosine_similarity(taps[40], taps[41], dim=0)
    far = 1 - F.cosine_similarity(taps[40], taps[40 + 20], dim=0)
    assert 0 < near < far
