"""The naive fp32 reference path that every optimisation is measured against.

It computes exactly what :meth:`AdaptCLIP.predict` computes, the straightforward way:

* attention written out as ``softmax(Q K^T / sqrt(d)) V`` (no fused kernel) for both streams;
* a separate value in-projection for the value stream (not shared with the original stream);
* the last block computed for every token although only its CLS token is read;
* text features (231 static sentences and the 2 learned prompts) encoded on every call;
* the k reference images encoded on every call (no reference memory / bank);
* the 1-NN search as one full (B, N, k*N) similarity matrix.

It shares the model's weights and adapter modules but none of the optimised code paths, so the
tests can also use it as an independent check of the optimised forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.model import prompts
from adaptclip_med.methods.adaptclip.network import AdaptCLIP, Prediction
from adaptclip_med.methods.adaptclip.adapters import patch_probability_map, text_logits, topk_mean_pool
from adaptclip_med.model.backbone import ClipBackbone, VisionFeatures
from adaptclip_med.methods.adaptclip.fusion import anomaly_probability, fuse


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, d) attention with the (T x T) weights materialised."""
    weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return weights.softmax(dim=-1) @ v


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, width = x.shape
    return x.view(batch, tokens, heads, width // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


def naive_block(block: nn.Module, x: torch.Tensor, two_stream: bool,
                attention: Callable[..., torch.Tensor] = naive_attention) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One ViT block (and its value-value update) with unfused projections; ``attention`` lets the
    block-level ablation swap in the fused kernel alone."""
    attn: nn.MultiheadAttention = block.attn
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    y = block.ln_1(x)
    q, k, v = (_heads(F.linear(y, w, b), attn.num_heads) for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))
    x_out = x + block.ls_1(attn.out_proj(_merge(attention(q, k, v))))
    x_out = x_out + block.ls_2(block.mlp(block.ln_2(x_out)))
    if not two_stream:
        return x_out, None
    value = _heads(F.linear(y, w_v, b_v), attn.num_heads)
    return x_out, block.ls_1(attn.out_proj(_merge(attention(value, value, value))))


@torch.no_grad()
def naive_encode_image(backbone: ClipBackbone, images: torch.Tensor) -> VisionFeatures:
    """Same outputs as :meth:`ClipBackbone.encode_image` (taps and global feature)."""
    visual = backbone.clip.visual
    x = visual.conv1(images)
    grid = (x.shape[-2], x.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
    x = visual.ln_pre(x + backbone.positional_embedding(grid, x.dtype, x.device))
    taps, value_stream = [], None
    for index, block in enumerate(visual.transformer.resblocks, start=1):
        two_stream = index >= backbone.vv_start_layer
        if two_stream and value_stream is None:
            value_stream = x
        x, update = naive_block(block, x, two_stream)
        if two_stream:
            value_stream = value_stream + update
        if index in backbone.tap_layers:
            taps.append(visual.ln_post(value_stream if value_stream is not None else x) @ visual.proj)
    return VisionFeatures(taps=taps, global_token=x[:, 0] @ visual.proj, grid=grid)


@torch.no_grad()
def naive_static_text(backbone: ClipBackbone) -> torch.Tensor:
    """(2, D) static text features, encoded from the 231 sentences every time."""
    normal = backbone.encode_text(prompts.normal_sentences()).mean(dim=0)
    abnormal = backbone.encode_text(prompts.abnormal_sentences()).mean(dim=0)
    return torch.stack([normal, abnormal])


@torch.no_grad()
def naive_learned_text(model: AdaptCLIP) -> torch.Tensor:
    """(2, D) learned prompt features, run through the text tower every time."""
    textual = model.textual
    embeddings = torch.cat([textual.prefix, torch.stack([textual.ctx_normal, textual.ctx_abnormal]), textual.suffix], dim=1)
    return model.backbone.encode_text_embeddings(embeddings, textual.token_ids.long().argmax(dim=-1))


def naive_nearest_neighbours(query: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine distance and index of the nearest memory patch from the full (B, N, M) matrix."""
    best, index = (query @ memory.transpose(1, 2)).max(dim=-1)
    return 1.0 - best, index


def _prompt_query_layer(model: AdaptCLIP, layer: int, tokens: torch.Tensor, memory: torch.Tensor,
                        grid: tuple[int, int], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PQA for one tapped layer: (logits (B, 2), anomaly map (B, H, W), distance map (B, H, W))."""
    pqa = model.prompt_query
    query = F.normalize(tokens, dim=-1)[:, 1:]
    distance, index = naive_nearest_neighbours(query, memory)
    aligned = memory.expand(query.shape[0], -1, -1).gather(1, index.unsqueeze(-1).expand(-1, -1, memory.shape[-1]))
    fused = query + (query - aligned).abs() if pqa.use_context else (query - aligned).abs()
    fused = pqa.layer_norms[layer](fused.transpose(1, 2).reshape(query.shape[0], -1, *grid))
    prob = F.interpolate(pqa.pixel_head(fused).softmax(dim=1), size=size, mode="bilinear", align_corners=False)
    distance_map = F.interpolate(distance.reshape(-1, 1, *grid), size=size, mode="bilinear", align_corners=False)
    return pqa.image_head(topk_mean_pool(fused)), prob[:, 1], distance_map[:, 0]


@torch.no_grad()
def naive_predict(model: AdaptCLIP, images: torch.Tensor, references: torch.Tensor | None = None) -> Prediction:
    """Fused map and score for ``images`` (B, 3, H, W), few-shot against ``references`` (k, 3, H, W)."""
    backbone, size = model.backbone, tuple(images.shape[-2:])
    features = naive_encode_image(backbone, images)
    learned, static = naive_learned_text(model), naive_static_text(backbone)
    last = features.taps[-1]
    ta_score = anomaly_probability(text_logits(features.global_token, learned))
    ta_map = patch_probability_map(last[:, 1:], learned, features.grid, size)[:, 1]
    va_global, va_tokens = model.visual(features.global_token, last)
    va_score = anomaly_probability(text_logits(va_global, static))
    va_map = patch_probability_map(va_tokens[:, 1:], static, features.grid, size)[:, 1]
    maps, scores = {"ta": ta_map, "va": va_map}, {"ta": ta_score, "va": va_score}
    if references is None:
        anomaly_map, score = fuse(va_map, ta_map, va_score, ta_score)
        return Prediction(anomaly_map=anomaly_map, score=score, branch_maps=maps, branch_scores=scores)
    reference_taps = naive_encode_image(backbone, references).taps
    layers = []
    for layer, (tokens, ref) in enumerate(zip(features.taps, reference_taps)):
        memory = F.normalize(ref, dim=-1)[:, 1:].reshape(1, -1, ref.shape[-1])
        layers.append(_prompt_query_layer(model, layer, tokens, memory, features.grid, size))
    pq_score = torch.stack([anomaly_probability(logits) for logits, _, _ in layers]).mean(dim=0)
    pq_map = torch.stack([prob for _, prob, _ in layers]).mean(dim=0)
    distances = [distance for _, _, distance in layers]
    anomaly_map, score = fuse(va_map, ta_map, va_score, ta_score, pq_map, pq_score, distances)
    maps.update(pq=pq_map, distance=torch.stack(distances).mean(dim=0))
    scores["pq"] = pq_score
    return Prediction(anomaly_map=anomaly_map, score=score, branch_maps=maps, branch_scores=scores)
