"""The naive reference path (tests/support/naive.py) and the optimised path give the same outputs in
fp32, and the optimised path really uses its caches."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaptclip_med.model.backbone import _block_forward
from adaptclip_med.model.nn_search import nearest_neighbours

from tests.support.naive import naive_block, naive_encode_image, naive_nearest_neighbours, naive_predict

ATOL = 1e-5


def test_backbone_features_agree(tiny_model, images):
    fast = tiny_model.backbone.encode_image(images)
    slow = naive_encode_image(tiny_model.backbone, images)
    for got, want in zip(fast.taps, slow.taps):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast.global_token, slow.global_token, atol=ATOL, rtol=0)


def test_cls_only_last_block_gives_the_same_cls_token(tiny_model):
    block = tiny_model.backbone.clip.visual.transformer.resblocks[-1]
    x = torch.randn(2, 17, block.attn.embed_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, full_update = _block_forward(block, x, True)
        cls, cls_update = _block_forward(block, x, True, cls_only=True)
        naive, _ = naive_block(block, x, True)
    assert cls.shape == (2, 1, x.shape[-1])
    torch.testing.assert_close(cls[:, 0], full[:, 0], atol=ATOL, rtol=0)
    torch.testing.assert_close(full, naive, atol=ATOL, rtol=0)
    torch.testing.assert_close(cls_update, full_update, atol=0, rtol=0)  # the value stream is untouched


def test_predictions_agree_zero_and_few_shot(tiny_model, images):
    queries, references = images[:3], images[3:]
    for refs in (None, references):
        memory = tiny_model.encode_references(refs) if refs is not None else None
        fast = tiny_model.predict(queries, memory)
        slow = naive_predict(tiny_model, queries, refs)
        torch.testing.assert_close(fast.anomaly_map, slow.anomaly_map, atol=ATOL, rtol=0)
        torch.testing.assert_close(fast.score, slow.score, atol=ATOL, rtol=0)
        assert fast.branch_maps.keys() == slow.branch_maps.keys()


def test_chunked_and_full_nearest_neighbours_agree():
    generator = torch.Generator().manual_seed(5)
    query = F.normalize(torch.randn(2, 30, 8, generator=generator), dim=-1)
    memory = F.normalize(torch.randn(1, 250, 8, generator=generator), dim=-1)
    fast_d, fast_i = nearest_neighbours(query, memory, chunk_size=64)
    slow_d, slow_i = naive_nearest_neighbours(query, memory)
    torch.testing.assert_close(fast_d, slow_d, atol=ATOL, rtol=0)
    assert torch.equal(fast_i, slow_i)


def test_text_features_are_not_recomputed_per_prediction(tiny_model, images, monkeypatch):
    tiny_model.predict(images[:1])  # fills the caches
    calls = []
    original = tiny_model.backbone.encode_text_embeddings
    monkeypatch.setattr(tiny_model.backbone, "encode_text_embeddings", lambda *a, **k: calls.append(1) or original(*a, **k))
    tiny_model.predict(images[:2])
    tiny_model.predict(images[2:4], tiny_model.encode_references(images[4:]))
    assert calls == []
