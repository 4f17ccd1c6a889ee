"""AdaptCLIP: frozen CLIP backbone + textual, visual and prompt-query adapters + fusion.

Data path (shapes for ViT-L/14 at 518 px: G = 37, N = 1369, D = 768)::

    images (B,3,H,W) ──backbone──► taps 4 x (B,N+1,D), global (B,D)
        TA: cos(global, learned text) → logits (B,2); cos(last tap, learned text) → map (B,2,H,W)
        VA: adapters(global, last tap) vs static text → logits (B,2), map (B,2,H,W)
        PQA (k ≥ 1): per tap, 1-NN against the reference patches → logits, map, distance map
    fusion → anomaly map (B,H,W) smoothed, score (B,)

References are encoded ONCE into a :class:`ReferenceMemory` and reused for every query, the
predictor pattern of segment-anything's ``set_image``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.methods.adaptclip.adapters import (
    PromptQueryAdapter,
    PromptQueryLayerOutput,
    TextualAdapter,
    VisualAdapter,
    patch_probability_map,
    text_logits,
)
from adaptclip_med.model.backbone import ClipBackbone, VisionFeatures
from adaptclip_med.methods.adaptclip.fusion import anomaly_probability, fuse
from adaptclip_med.model.prompts import DEFAULT_PROMPT_LENGTH

DEFAULT_IMAGE_SIZE = 518


@dataclass(frozen=True)
class AdapterConfig:
    """Hyper-parameters that shape the adapters (the release's '12_4_128': prompt length 12,
    reduction 4, PQA mid channels 128) and the inference resolution."""

    prompt_length: int = DEFAULT_PROMPT_LENGTH
    reduction: int = 4
    pq_context: bool = True
    image_size: int = DEFAULT_IMAGE_SIZE


@dataclass
class ReferenceMemory:
    """Normal reference patches per tapped layer, L2-normalised, CLS dropped: each (R, M, D) with
    R = 1 (shared by the whole batch) or R = B (one memory per query, e.g. matched slices)."""

    layers: list[torch.Tensor]
    shots: int

    @classmethod
    def from_features(cls, features: VisionFeatures, queries: int = 1) -> "ReferenceMemory":
        """Pool the k reference images of each set into one memory (spec §4.1).

        ``queries`` > 1: the features hold ``queries`` consecutive sets of k images (query-major,
        as in training, where every query has its own references) and each set becomes that
        query's memory."""
        layers = [F.normalize(tap, dim=-1)[:, 1:].reshape(queries, -1, tap.shape[-1]) for tap in features.taps]
        return cls(layers=layers, shots=features.global_token.shape[0] // queries)

    @classmethod
    def stack(cls, memories: list["ReferenceMemory"], release: bool = False) -> "ReferenceMemory":
        """One memory per query: stack single memories of equal size along the batch.

        ``release`` empties each given memory's layer as soon as it is stacked, for throw-away
        per-slice memories: with ViT-L and k = 4 a batch's memories are ~0.8 GB, and holding
        them twice would double the peak."""
        layers = []
        for i in range(len(memories[0].layers)):
            layers.append(torch.cat([m.layers[i] for m in memories], dim=0))
            if release:
                for m in memories:
                    m.layers[i] = layers[-1][:0]
        return cls(layers=layers, shots=memories[0].shots)


@dataclass
class BranchOutputs:
    """Raw per-branch outputs (what training losses need). Maps are (B, 2, H, W) softmax maps."""

    ta_logits: torch.Tensor
    ta_map: torch.Tensor
    va_logits: torch.Tensor
    va_map: torch.Tensor
    pq_layers: list[PromptQueryLayerOutput] = field(default_factory=list)


@dataclass
class Prediction:
    """Final outputs: ``anomaly_map`` (B, H, W) smoothed, ``score`` (B,), plus the branch maps
    (anomaly channel, unsmoothed) for display and debugging."""

    anomaly_map: torch.Tensor
    score: torch.Tensor
    branch_maps: dict[str, torch.Tensor]
    branch_scores: dict[str, torch.Tensor]


class AdaptCLIP(nn.Module):
    """The composed network. Only the adapters hold trainable parameters."""

    def __init__(self, backbone: ClipBackbone, config: AdapterConfig = AdapterConfig()) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        dim = backbone.embed_dim
        self.textual = TextualAdapter(backbone.text_width, backbone.context_length, config.prompt_length)
        self.textual.initialise_from_backbone(backbone)
        self.visual = VisualAdapter(dim, config.reduction)
        self.prompt_query = PromptQueryAdapter(dim, len(backbone.tap_layers), config.pq_context)

    # ------------------------------------------------------------------ encoding
    def encode(self, images: torch.Tensor) -> VisionFeatures:
        return self.backbone.encode_image(images)

    @torch.no_grad()
    def encode_references(self, images: torch.Tensor) -> ReferenceMemory:
        """Encode k normal reference images (k, 3, H, W) once into a shared memory."""
        return ReferenceMemory.from_features(self.encode(images))

    # ------------------------------------------------------------------ branches
    def branches(self, features: VisionFeatures, memory: ReferenceMemory | None,
                 size: tuple[int, int]) -> BranchOutputs:
        grid = features.grid
        last_tokens = features.taps[-1]

        learned_text = self.textual.text_features(self.backbone)
        ta_logits = text_logits(features.global_token, learned_text)
        ta_map = patch_probability_map(last_tokens[:, 1:], learned_text, grid, size)

        static_text = self.backbone.static_text_features()
        va_global, va_tokens = self.visual(features.global_token, last_tokens)
        va_logits = text_logits(va_global, static_text)
        va_map = patch_probability_map(va_tokens[:, 1:], static_text, grid, size)

        pq_layers: list[PromptQueryLayerOutput] = []
        if memory is not None:
            for layer, tokens in enumerate(features.taps):
                pq_layers.append(self.prompt_query.forward_layer(layer, tokens, memory.layers[layer], grid, size))
        return BranchOutputs(ta_logits, ta_map, va_logits, va_map, pq_layers)

    def forward(self, images: torch.Tensor, memory: ReferenceMemory | None = None) -> BranchOutputs:
        """Branch outputs for a batch (used by training); images are already at model size."""
        return self.branches(self.encode(images), memory, tuple(images.shape[-2:]))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, images: torch.Tensor | None, memory: ReferenceMemory | None = None,
                features: VisionFeatures | None = None) -> Prediction:
        """Fused anomaly map and score (zero-shot without ``memory``, few-shot with it).

        ``images`` may be None when ``features`` are given (the map size is then the patch grid
        times the patch size, i.e. the input size those features were encoded from)."""
        if self.training:
            raise RuntimeError("call .eval() before predict(): BatchNorm must use running statistics")
        features = features if features is not None else self.encode(images)
        if images is not None:
            size = tuple(images.shape[-2:])
        else:
            size = (features.grid[0] * self.backbone.patch_size, features.grid[1] * self.backbone.patch_size)
        out = self.branches(features, memory, size)
        ta_score, va_score = anomaly_probability(out.ta_logits), anomaly_probability(out.va_logits)
        branch_maps = {"ta": out.ta_map[:, 1], "va": out.va_map[:, 1]}
        branch_scores = {"ta": ta_score, "va": va_score}
        if out.pq_layers:
            pq_map = torch.stack([layer.prob_map[:, 1] for layer in out.pq_layers]).mean(dim=0)
            pq_score = torch.stack([anomaly_probability(layer.logits) for layer in out.pq_layers]).mean(dim=0)
            distances = [layer.distance_map[:, 0] for layer in out.pq_layers]
            anomaly_map, score = fuse(branch_maps["va"], branch_maps["ta"], va_score, ta_score, pq_map, pq_score, distances)
            branch_maps.update(pq=pq_map, distance=torch.stack(distances).mean(dim=0))
            branch_scores["pq"] = pq_score
        else:
            anomaly_map, score = fuse(branch_maps["va"], branch_maps["ta"], va_score, ta_score)
        return Prediction(anomaly_map=anomaly_map, score=score, branch_maps=branch_maps, branch_scores=branch_scores)

    def adapter_modules(self) -> dict[str, nn.Module]:
        return {"textual": self.textual, "visual": self.visual, "prompt_query": self.prompt_query}

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter tensors only (the backbone is frozen and stored elsewhere)."""
        state: dict[str, torch.Tensor] = {}
        for prefix, module in self.adapter_modules().items():
            for key, value in module.state_dict().items():
                state[f"{prefix}.{key}"] = value
        return state

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, module in self.adapter_modules().items():
            sub = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
            module.load_state_dict(sub, strict=True)
