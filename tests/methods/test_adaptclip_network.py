"""Adapters, 1-NN, fusion and the composed network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from adaptclip_med.methods.adaptclip.adapters import PromptQueryAdapter, TextualAdapter, VisualAdapter
from adaptclip_med.methods.adaptclip.network import ReferenceMemory
from adaptclip_med.methods.adaptclip.fusion import fuse, gaussian_smooth, harmonic_mean
from adaptclip_med.model.nn_search import nearest_neighbours


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_release_at_vit_l_sizes():
    assert _count(TextualAdapter(768, 77, 12)) == 18_432
    assert _count(VisualAdapter(768, 4)) == 590_592
    assert _count(PromptQueryAdapter(768, 4)) == 1_154_242


def test_chunked_nearest_neighbour_equals_full_search():
    generator = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(3, 50, 16, generator=generator), dim=-1)
    memory = F.normalize(torch.randn(3, 333, 16, generator=generator), dim=-1)
    full = 1 - query @ memory.transpose(1, 2)
    want_d, want_i = full.min(dim=-1)
    for chunk in (7, 100, 4096):
        got_d, got_i = nearest_neighbours(query, memory, chunk)
        torch.testing.assert_close(got_d, want_d)
        assert torch.equal(got_i, want_i)
    shared_d, _ = nearest_neighbours(query, memory[:1], 13)
    torch.testing.assert_close(shared_d, (1 - query @ memory[0].t()).min(-1).values)


@pytest.mark.parametrize("shape", [(1, 56, 56), (2, 40, 33), (1, 10, 12)])
def test_gaussian_smoothing_matches_scipy(shape):
    maps = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    got = gaussian_smooth(maps).numpy()
    want = np.stack([gaussian_filter(m.numpy().astype(np.float64), sigma=4) for m in maps])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_harmonic_mean_and_zero():
    a, b = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([3.0, 2.0, 5.0])
    torch.testing.assert_close(harmonic_mean([a, b]), torch.tensor([1.5, 2.0, 0.0]))


def test_fusion_formulas_by_hand():
    generator = torch.Generator().manual_seed(2)
    va, ta, pq = (torch.rand(1, 20, 20, generator=generator) for _ in range(3))
    dists = [torch.rand(1, 20, 20, generator=generator) + 0.05 for _ in range(4)]
    s_va, s_ta, s_pq = torch.tensor([0.2]), torch.tensor([0.6]), torch.tensor([0.9])
    m0, sc0 = fuse(va, ta, s_va, s_ta)
    want0 = gaussian_filter(((va + ta) / 2)[0].numpy(), 4)
    np.testing.assert_allclose(m0[0].numpy(), want0, atol=1e-6)
    assert sc0.item() == pytest.approx((0.2 + 0.6 + want0.max()) / 3, abs=1e-6)
    m1, sc1 = fuse(va, ta, s_va, s_ta, pq, s_pq, dists)
    a = 4 / sum(1 / d[0].numpy() for d in dists)
    mean3 = ((va + ta + pq) / 3)[0].numpy()
    want1 = gaussian_filter(2 / (1 / mean3 + 1 / a), 4)
    np.testing.assert_allclose(m1[0].numpy(), want1, atol=1e-5)
    s = (0.2 + 0.6 + 0.9) / 3
    assert sc1.item() == pytest.approx(2 / (1 / s + 1 / want1.max()), abs=1e-5)


@pytest.mark.parametrize("shots", [0, 1, 3])
def test_prediction_shapes(tiny_model, images, shots):
    memory = tiny_model.encode_references(images[2:2 + shots]) if shots else None
    if memory is not None:
        assert memory.shots == shots and memory.layers[0].shape == (1, shots * 16, tiny_model.backbone.embed_dim)
    out = tiny_model.predict(images[:2], memory)
    assert out.anomaly_map.shape == (2, 56, 56) and out.score.shape == (2,)
    assert torch.isfinite(out.anomaly_map).all() and ((out.score >= 0) & (out.score <= 1)).all()
    assert ("pq" in out.branch_maps) == bool(shots)


def test_query_identical_to_reference_has_zero_distance(tiny_model, images):
    memory = tiny_model.encode_references(images[:1])
    feats = tiny_model.encode(images[:1])
    out = tiny_model.branches(feats, memory, (56, 56))
    for layer in out.pq_layers:
        assert layer.distance_map.abs().max().item() < 1e-5
    other = tiny_model.branches(tiny_model.encode(images[1:2]), memory, (56, 56))
    assert min(layer.distance_map.mean().item() for layer in other.pq_layers) > 1e-3


def test_per_query_memories_equal_shared_memory(tiny_model, images):
    shared = tiny_model.encode_references(images[3:5])
    stacked = ReferenceMemory.stack([shared, shared])
    a = tiny_model.predict(images[:2], shared)
    b = tiny_model.predict(images[:2], stacked)
    torch.testing.assert_close(a.anomaly_map, b.anomaly_map)


def test_gradients_reach_adapters_not_backbone(tiny_model, images):
    saved = {k: v.clone() for k, v in tiny_model.adapter_state_dict().items()}
    tiny_model.train()
    try:
        memory = tiny_model.encode_references(images[3:4])
        out = tiny_model(images[:2], memory)
        loss = out.ta_logits.sum() + out.va_logits.sum() + out.ta_map.mean() + out.va_map.mean()
        loss = loss + sum(layer.logits.sum() + layer.prob_map.mean() for layer in out.pq_layers)
        loss.backward()
        for name, module in tiny_model.adapter_modules().items():
            grads = [p.grad for p in module.parameters()]
            assert all(g is not None and torch.isfinite(g).all() for g in grads), name
            assert any(g.abs().sum() > 0 for g in grads), name
        assert all(p.grad is None for p in tiny_model.backbone.parameters())
    finally:
        tiny_model.zero_grad(set_to_none=True)
        tiny_model.load_adapter_state_dict(saved)  # BN running statistics moved in train mode
        tiny_model.eval()


def test_predict_refuses_train_mode(tiny_model, images):
    tiny_model.train()
    try:
        with pytest.raises(RuntimeError, match="eval"):
            tiny_model.predict(images[:1])
    finally:
        tiny_model.eval()
