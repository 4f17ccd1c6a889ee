"""WinCLIP behind the method contract, on a tiny random GELU CLIP (grid 6) loaded from a file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.methods.base import MethodSpec
from adaptclip_med.methods.registry import load_method
from adaptclip_med.methods.winclip import model as wc
from adaptclip_med.methods.winclip.prompts import ensemble_sentences
from adaptclip_med.model.prompts import TEMPLATES
from adaptclip_med.methods.winclip.windows import harmonic_aggregate, window_indices
from adaptclip_med.model.backbone_source import BackboneSpec

ARCH = "winclip-tiny-vit"
SIZE = 84
GRID = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tests.support.tiny_models import save_random_clip

    return save_random_clip(ARCH, tmp_path_factory.mktemp("winclip") / "tiny.pt", seed=11)


@pytest.fixture(scope="module")
def method(weights):
    return load_method(MethodSpec(method="winclip", backbone=BackboneSpec(ARCH, str(weights), offline=True), class_name="chest x-ray"))


@pytest.fixture()
def batch():
    return torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))


# ---------------------------------------------------------------- windows and aggregation
def test_window_enumeration_is_row_major_stride_one():
    assert window_indices(3, 2).tolist() == [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    three = window_indices(4, 3)
    assert three.shape == (4, 9)
    assert three[1].tolist() == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert window_indices(15, 2).shape[0] == 196 and window_indices(15, 3).shape[0] == 169


def test_harmonic_aggregation_hand_computed():
    scores = torch.tensor([[1.0, 0.5, 0.25, 0.2]])
    patch = harmonic_aggregate(scores, 3, 2)[0]
    expected = torch.tensor([[1.0, 2 / 3, 0.5],
                             [2 / (1 + 4), 4 / (1 + 2 + 4 + 5), 2 / (2 + 5)],
                             [0.25, 2 / (4 + 5), 0.2]])
    torch.testing.assert_close(patch, expected)
    # a window scoring exactly 0 zeroes the patches it covers, and only those
    zeroed = harmonic_aggregate(torch.tensor([[0.0, 0.5, 0.25, 0.2]]), 3, 2)[0]
    assert zeroed[0, 0] == 0 and zeroed[1, 1] == 0 and zeroed[2, 2] == pytest.approx(0.2)
    # grid 4, scale 3: the corner has one window, the centre four
    constant = harmonic_aggregate(torch.full((1, 4), 0.3), 4, 3)[0]
    torch.testing.assert_close(constant, torch.full((4, 4), 0.3))


# ---------------------------------------------------------------- text ensemble
def test_prompt_ensemble_keeps_duplicated_template():
    assert len(TEMPLATES) == 21 and len(set(TEMPLATES)) == 20
    assert TEMPLATES.count("a jpeg corrupted photo of the {}.") == 2
    normal, anomalous = ensemble_sentences("brain")
    assert len(normal) == 147 and len(anomalous) == 84
    assert normal[:21] == [t.format("brain") for t in TEMPLATES]  # bare class name first, state outer loop
    assert normal[21 + 11] == "a photo of a flawless brain."
    assert anomalous[0] == "a cropped photo of the damaged brain." and anomalous[-1] == "a photo of a brain with damage for anomaly detection."


def test_text_embeddings_are_means_of_raw_sentence_embeddings(method):
    text = method.text_embeddings("liver")
    normal, anomalous = ensemble_sentences("liver")
    torch.testing.assert_close(text[0], method.backbone.encode_text(normal).mean(0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(text[1], method.backbone.encode_text(anomalous).mean(0), atol=1e-6, rtol=1e-5)
    assert method.text_embeddings("liver") is text  # cached per class name
    assert not torch.allclose(method.text_embeddings("lung"), text)


# ---------------------------------------------------------------- image side
def test_window_token_selection_equals_masked_full_sequence(method, batch):
    visual = method.backbone.clip.visual
    images = batch[:2]
    encoded = method.encode(images)
    tokens = wc.embed_tokens(visual, images, method._positions)
    length = 1 + GRID * GRID
    for scale in (2, 3):
        for w, patches in enumerate(window_indices(GRID, scale).tolist()):
            if w % 5:  # a sample of windows keeps the test fast
                continue
            allowed = [0] + [p + 1 for p in patches]
            mask = torch.full((length, length), float("-inf"))
            mask.fill_diagonal_(0.0)  # other tokens attend to themselves only (no all-masked rows)
            mask[np.ix_(allowed, allowed)] = 0.0
            out = visual.transformer(visual.ln_pre(tokens), attn_mask=mask)
            cls = visual.ln_post(out[:, 0]) @ visual.proj
            torch.testing.assert_close(encoded.window_embeddings[scale][:, w], cls, atol=1e-5, rtol=1e-5)


def test_full_forward_matches_open_clip(method, batch):
    visual = method.backbone.clip.visual
    encoded = method.encode(batch[:2])
    torch.testing.assert_close(encoded.image_embedding, visual(batch[:2]), atol=1e-5, rtol=1e-5)
    assert encoded.patch_embeddings.shape == (2, GRID * GRID, visual.transformer.width)


# ---------------------------------------------------------------- outputs
@pytest.mark.parametrize("shots", [0, 1, 2])
def test_output_shapes(method, batch, shots):
    memory = method.encode_normals(batch[3:3 + shots]) if shots else None
    pred = method.predict(batch[:3], memory)
    assert pred.anomaly_map.shape == (3, SIZE, SIZE) and pred.score.shape == (3,)
    assert pred.extra_maps["zero_shot"].shape == (3, SIZE, SIZE)
    assert pred.extra_scores["image_zero_shot"].shape == (3,)
    assert ("few_shot" in pred.extra_maps) == bool(shots)
    if shots:
        assert memory.shots == shots
        assert memory.patches.shape == (shots * GRID * GRID, 64)
        assert memory.windows[2].shape == (shots * 25, 64) and memory.windows[3].shape == (shots * 16, 64)
        assert pred.extra_maps["few_shot"].shape == (3, SIZE, SIZE)
    assert torch.isfinite(pred.anomaly_map).all() and (pred.anomaly_map >= 0).all() and (pred.anomaly_map <= 1).all()
    rows = method.memory_rows(method.encode(batch[:2]))
    assert {k: tuple(v.shape) for k, v in rows.items()} == {"patches": (2, 36, 64), "windows2": (2, 25, 64), "windows3": (2, 16, 64)}


def test_zero_shot_against_naive_loops(method, batch):
    encoded = method.encode(batch[:1])
    text = F.normalize(method.text_embeddings(), dim=-1)

    def prob(e):
        cos = F.normalize(e, dim=-1) @ text.T
        return torch.sigmoid((cos[1] - cos[0]) / 0.07)

    s_img = prob(encoded.image_embedding[0])
    grid = torch.zeros(GRID, GRID)
    for r in range(GRID):
        for c in range(GRID):
            inverse = [1 / s_img]
            for scale in (2, 3):
                covering = [prob(encoded.window_embeddings[scale][0, i * (GRID - scale + 1) + j])
                            for i in range(GRID - scale + 1) for j in range(GRID - scale + 1)
                            if i <= r < i + scale and j <= c < j + scale]
                inverse.append(sum(1 / s for s in covering) / len(covering))
            grid[r, c] = 3 / sum(inverse)
    pred = method.predict_encoded(encoded)
    expected = F.interpolate(grid[None, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(pred.anomaly_map[0], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(pred.score[0], s_img, atol=1e-6, rtol=1e-5)


def test_zero_shot_ignores_references(method, weights, batch):
    fresh = type(method).load(MethodSpec(method="winclip", backbone=BackboneSpec(ARCH, str(weights), offline=True), class_name="chest x-ray"))
    before = fresh.predict(batch[:2])
    fresh.encode_normals(batch[2:4])
    after = fresh.predict(batch[:2], None)
    torch.testing.assert_close(after.anomaly_map, before.anomaly_map, atol=0, rtol=0)
    torch.testing.assert_close(after.score, before.score, atol=0, rtol=0)
    one = fresh.predict(batch[:2], fresh.encode_normals(batch[2:3]))
    other = fresh.predict(batch[:2], fresh.encode_normals(batch[4:5]))
    assert (one.anomaly_map - other.anomaly_map).abs().max() > 1e-4
    assert not torch.equal(one.anomaly_map, before.anomaly_map)


def test_query_equal_to_reference_has_zero_few_shot_distance(method, batch):
    memory = method.encode_normals(batch[:2])
    pred = method.predict(batch[:1], memory)
    assert torch.equal(pred.extra_maps["few_shot"], torch.zeros_like(pred.extra_maps["few_shot"]))
    torch.testing.assert_close(pred.anomaly_map, pred.extra_maps["zero_shot"] / 2)
    torch.testing.assert_close(pred.score, pred.extra_scores["image_zero_shot"] / 2)
    assert (wc.nearest_distance(torch.randn(1, 7, 64), torch.randn(9, 64)) >= 0).all()


def test_combination_rule(method, batch):
    memory = method.encode_normals(batch[3:5])
    encoded = method.encode(batch[:2])
    pred = method.predict_encoded(encoded, memory)
    fs_grid = wc.few_shot(encoded, memory)
    s_img = pred.extra_scores["image_zero_shot"]
    torch.testing.assert_close(pred.score, (s_img + fs_grid.amax(dim=(1, 2))) / 2)
    torch.testing.assert_close(pred.anomaly_map, (pred.extra_maps["zero_shot"] + pred.extra_maps["few_shot"]) / 2, atol=1e-6, rtol=1e-5)


def test_rows_pooled_per_image_equal_encode_normals(method, batch):
    """The bank path: rows of single images pooled with memory_from_rows == one encode_normals."""
    stacked = method.encode_normals(batch[2:5])
    pooled = method.memory_from_rows([method.memory_rows(method.encode(batch[i:i + 1])) for i in range(2, 5)])
    assert pooled.shots == stacked.shots == 3
    torch.testing.assert_close(pooled.patches, stacked.patches, atol=1e-5, rtol=1e-5)
    for scale in (2, 3):
        torch.testing.assert_close(pooled.windows[scale], stacked.windows[scale], atol=1e-5, rtol=1e-5)
    a, b = method.predict(batch[:2], pooled), method.predict(batch[:2], stacked)
    torch.testing.assert_close(a.anomaly_map, b.anomaly_map, atol=1e-5, rtol=1e-5)
    # one memory per query == each query predicted alone
    per_query = method.predict(batch[:2], [pooled, None])
    torch.testing.assert_close(per_query.anomaly_map[0], a.anomaly_map[0])
    torch.testing.assert_close(per_query.anomaly_map[1], method.predict(batch[1:2]).anomaly_map[0])


# ---------------------------------------------------------------- loading and preprocessing
def test_load_refuses_weights(weights):
    spec = MethodSpec(method="winclip", backbone=BackboneSpec(ARCH, str(weights), offline=True), weights="adapters.pt")
    with pytest.raises(AdaptClipError, match="^WinCLIP is training-free: --adapters does not apply$"):
        load_method(spec)


def test_identity_and_defaults(method):
    ident = method.identity()
    assert ident["method"] == "winclip" and ident["weights"] is None and ident["weights_sha256"] is None
    assert ident["image_size"] == SIZE and ident["class_name"] == "chest x-ray"
    assert ident["scales"] == [2, 3] and ident["temperature"] == 0.07
    assert ident["backbone"]["activation"] == "gelu"
    cls = type(method)
    assert cls.default_backbone == ("ViT-B-16-plus-240", "laion400m_e31") and not cls.trainable and cls.uses_class_name


def test_image_input_bicubic_antialias_no_clamp(method):
    rng = np.random.default_rng(0)
    array = (rng.random((50, 70, 3)) > 0.5).astype(np.uint8) * 255  # hard edges overshoot when resized
    got = method.image_input([Image.fromarray(array)])
    raw = torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255
    resized = F.interpolate(raw, size=(SIZE, SIZE), mode="bicubic", antialias=True, align_corners=False)
    assert resized.min() < 0 or resized.max() > 1
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    torch.testing.assert_close(got, (resized - mean) / std, atol=1e-6, rtol=1e-6)
    native = (rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    passed = method.image_input([Image.fromarray(native)])
    torch.testing.assert_close(passed[0], ((torch.from_numpy(native).permute(2, 0, 1).float() / 255)[None] - mean)[0] / std[0])
    slices = torch.from_numpy(array[..., 0].astype(np.float32) / 255)[None]
    torch.testing.assert_close(method.slice_input(slices), ((resized[:, :1].expand(-1, 3, -1, -1)) - mean) / std, atol=1e-6, rtol=1e-6)


def test_non_native_image_size_resizes_positions(weights, batch):
    method = load_method(MethodSpec(method="winclip", backbone=BackboneSpec(ARCH, str(weights), offline=True), image_size=112))
    assert method.grid == 8 and method._positions.shape[0] == 65
    pred = method.predict(F.interpolate(batch[:1], size=(112, 112)))
    assert pred.anomaly_map.shape == (1, 112, 112)


def test_load_from_config_json_and_refuses_other_precisions(weights):
    from adaptclip_med.model.backbone_source import PACKAGED_CONFIG_DIR

    config = str(PACKAGED_CONFIG_DIR / f"{ARCH}.json")
    method = load_method(MethodSpec(method="winclip", backbone=BackboneSpec(config, str(weights), offline=True)))
    assert method.image_size == SIZE and method.class_name == "medical scan"
    with pytest.raises(AdaptClipError, match="fp32 only"):
        load_method(MethodSpec(method="winclip", backbone=BackboneSpec(config, str(weights), offline=True), precision="bf16"))
