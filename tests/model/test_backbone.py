"""The two-stream vision forward, taps, global token, position interpolation and text features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adaptclip_med.model import prompts
from adaptclip_med.model.backbone import ClipBackbone, default_tap_layers, default_vv_start_layer


def _manual_vv_attention(block, y: torch.Tensor) -> torch.Tensor:
    """Independent reference: per-head loop, q = k = v = value projection, softmax(scale * V V^T) V, out-proj."""
    attn = block.attn
    width = y.shape[-1]
    heads = attn.num_heads
    head_dim = width // heads
    w_v = attn.in_proj_weight[2 * width:]
    b_v = attn.in_proj_bias[2 * width:]
    value = y @ w_v.t() + b_v
    outputs = []
    for h in range(heads):
        vh = value[..., h * head_dim:(h + 1) * head_dim]
        weights = torch.softmax(vh @ vh.transpose(-1, -2) * head_dim ** -0.5, dim=-1)
        outputs.append(weights @ vh)
    return attn.out_proj(torch.cat(outputs, dim=-1))


def test_default_layers_follow_the_release():
    assert default_tap_layers(24) == (6, 12, 18, 24)
    assert default_vv_start_layer(24) == 6
    assert default_vv_start_layer(12) == 4
    assert default_tap_layers(8) == (2, 4, 6, 8)


def test_taps_and_global_token_match_an_independent_forward(tiny_model, images):
    backbone = tiny_model.backbone
    visual = backbone.clip.visual
    feats = backbone.encode_image(images)
    assert len(feats.taps) == 4 and feats.grid == (4, 4)
    assert all(t.shape == (5, 17, backbone.embed_dim) for t in feats.taps)

    with torch.no_grad():
        x = visual._embeds(images)  # open_clip's own embedding at the native grid
        value_stream = None
        expected_taps = []
        for index, block in enumerate(visual.transformer.resblocks, start=1):
            if index >= backbone.vv_start_layer:
                if value_stream is None:
                    value_stream = x
                value_stream = value_stream + _manual_vv_attention(block, block.ln_1(x))
            x = block(x)  # open_clip's own block forward for the original stream
            if index in backbone.tap_layers:
                expected_taps.append(visual.ln_post(value_stream if value_stream is not None else x) @ visual.proj)
        expected_global = x[:, 0] @ visual.proj
        # open_clip's pooled output applies ln_post: ours must NOT (release quirk)
        assert not torch.allclose(visual(images), expected_global, atol=1e-4)
    for got, want in zip(feats.taps, expected_taps):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(feats.global_token, expected_global, atol=2e-5, rtol=1e-4)


def test_first_value_tap_has_exactly_one_vv_update(tiny_model, images):
    """With the first tap AT the value-stream start, the tap is x_in + one vv residual."""
    backbone = tiny_model.backbone
    visual = backbone.clip.visual
    probe = ClipBackbone(backbone.clip, backbone.identity, backbone.tokenizer, tap_layers=(2, 8), vv_start_layer=2)
    feats = probe.encode_image(images)
    with torch.no_grad():
        x = visual._embeds(images)
        x1 = visual.transformer.resblocks[0](x)
        block = visual.transformer.resblocks[1]
        expected = visual.ln_post(x1 + _manual_vv_attention(block, block.ln_1(x1))) @ visual.proj
    torch.testing.assert_close(feats.taps[0], expected, atol=2e-5, rtol=1e-4)


def test_backbone_is_frozen_and_stays_in_eval(tiny_model):
    backbone = tiny_model.backbone
    assert not any(p.requires_grad for p in backbone.parameters())
    tiny_model.train()
    try:
        assert not backbone.training and not backbone.clip.training
        assert tiny_model.visual.training
    finally:
        tiny_model.eval()


def test_position_grid_is_interpolated_per_forward_and_never_overwritten(tiny_model):
    backbone = tiny_model.backbone
    original = backbone.clip.visual.positional_embedding.detach().clone()
    for size, grid in ((56, (4, 4)), (84, (6, 6)), (112, (8, 8))):
        feats = backbone.encode_image(torch.randn(1, 3, size, size))
        assert feats.grid == grid and feats.taps[0].shape[1] == grid[0] * grid[1] + 1
    torch.testing.assert_close(backbone.clip.visual.positional_embedding, original, atol=0, rtol=0)
    pos = backbone.positional_embedding((6, 6), torch.float32, torch.device("cpu"))
    patch = original[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(patch, size=(6, 6), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).reshape(36, -1)
    torch.testing.assert_close(pos[1:], expected)
    torch.testing.assert_close(pos[0], original[0])
    torch.testing.assert_close(backbone.positional_embedding((4, 4), torch.float32, torch.device("cpu")), original)


def test_size_not_multiple_of_patch_is_rejected(tiny_model):
    from adaptclip_med.errors import CheckpointMismatchError

    with pytest.raises(CheckpointMismatchError, match="multiple of the patch size"):
        tiny_model.backbone.encode_image(torch.randn(1, 3, 60, 60))


def test_static_text_is_the_raw_mean_over_state_sentences(tiny_model):
    backbone = tiny_model.backbone
    assert len(prompts.normal_sentences()) == 147 and len(prompts.abnormal_sentences()) == 84
    assert prompts.normal_sentences()[21] == "a cropped photo of the flawless object."
    assert prompts.abnormal_sentences()[-1] == "a photo of a object with damage for anomaly detection."
    clip = backbone.clip
    with torch.no_grad():
        normal = clip.encode_text(backbone.tokenize(prompts.normal_sentences())).mean(0)
        abnormal = clip.encode_text(backbone.tokenize(prompts.abnormal_sentences())).mean(0)
    static = backbone.static_text_features()
    torch.testing.assert_close(static[0], normal, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(static[1], abnormal, atol=1e-5, rtol=1e-4)
    assert backbone.static_text_features() is static  # computed once


def test_textual_adapter_prompt_layout(tiny_model):
    """With the learned tokens set to the embedding of 'x', the learned text equals the
    placeholder sentence encoded by open_clip itself."""
    backbone = tiny_model.backbone
    textual = tiny_model.textual
    token_ids = textual.token_ids[0].tolist()
    assert token_ids[:15] == [49406] + [343] * 12 + [269, 49407] and set(token_ids[15:]) == {0}
    saved = (textual.ctx_normal.detach().clone(), textual.ctx_abnormal.detach().clone())
    try:
        x_embedding = backbone.clip.token_embedding.weight[343]
        with torch.no_grad():
            textual.ctx_normal.copy_(x_embedding.expand(12, -1))
            textual.ctx_abnormal.copy_(x_embedding.expand(12, -1))
        textual.invalidate_cache()
        learned = textual.text_features(backbone)
        with torch.no_grad():
            expected = backbone.clip.encode_text(backbone.tokenize([prompts.placeholder_sentence()]))[0]
        torch.testing.assert_close(learned[0], expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(learned[1], expected, atol=1e-5, rtol=1e-4)
    finally:
        with torch.no_grad():
            textual.ctx_normal.copy_(saved[0])
            textual.ctx_abnormal.copy_(saved[1])
        textual.invalidate_cache()
