"""The AdaCLIP forward for one batch, image by image (spec §3).

Everything per image that does not depend on reference memory lives here: dynamic prompts,
prompted vision pass, per-image text features, pixel logits, maps and the HSF score.  The vision
passes run batched (their tokens never mix across images); the text side runs once per image
because its prompts come from that image (Q13).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.errors import CheckpointMismatchError
from adaptclip_med.methods.adaclip import hsf, maps
from adaptclip_med.methods.adaclip.constants import K_CLUSTERS, KMEANS_SEED, PROMPT_DEPTH
from adaptclip_med.methods.adaclip.parts import AdaClipParts, PartDims
from adaptclip_med.methods.adaclip.text import TextTower
from adaptclip_med.methods.adaclip.vision import VisionTower


@dataclass
class AdaClipOutput:
    """Per-batch outputs.  tap_logits: per tap (B, N, 2); text: (B, D, 2); image_probs: (B, 2)
    HSF-fused [normal, abnormal]; raw_map: (B, S, S) unsmoothed; g: unprompted embedding (B, D);
    v: normalised image feature (B, D); labels: the KMeans partition per image."""

    tap_logits: list[torch.Tensor]
    text: torch.Tensor
    image_probs: torch.Tensor
    raw_map: torch.Tensor | None
    g: torch.Tensor
    v: torch.Tensor
    labels: list[np.ndarray] = field(default_factory=list)
    tap_maps: list[torch.Tensor] | None = None


def part_dims(clip: nn.Module) -> PartDims:
    """Dimensions of the trainable tensors for this CLIP; refuses a CLIP AdaCLIP cannot prompt."""
    embed_dim = int(clip.visual.proj.shape[1])
    text_width = int(clip.token_embedding.weight.shape[1])
    if text_width != embed_dim:
        raise CheckpointMismatchError(
            f"AdaCLIP needs a CLIP whose text width equals its embedding dim (got {text_width} vs {embed_dim}): choose e.g. ViT-L-14-336")
    for tower, blocks in (("vision", clip.visual.transformer.resblocks), ("text", clip.transformer.resblocks)):
        if len(blocks) < PROMPT_DEPTH:
            raise CheckpointMismatchError(f"AdaCLIP prompts {PROMPT_DEPTH} blocks but the {tower} tower has {len(blocks)}")
    return PartDims(vision_width=int(clip.visual.conv1.out_channels), embed_dim=embed_dim)


class AdaClipNetwork(nn.Module):
    """Frozen CLIP towers + the 38 trainable tensors (``parts``)."""

    def __init__(self, clip: nn.Module, tokenizer, image_size: int, parts: AdaClipParts | None = None) -> None:
        super().__init__()
        self.parts = parts if parts is not None else AdaClipParts(part_dims(clip))
        self.clip = clip
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.clip.eval()
        self.vision = VisionTower(clip.visual, image_size)
        self.text = TextTower(clip, tokenizer)
        self.image_size = image_size

    def train(self, mode: bool = True) -> "AdaClipNetwork":
        """Only the trainable parts change mode; the frozen CLIP always stays in eval."""
        self.training = mode
        self.parts.train(mode)
        self.clip.eval()
        return self

    def forward(self, images: torch.Tensor, class_names: list[str], aggregation: bool = True,
                labels: list[np.ndarray | None] | None = None, k: int = K_CLUSTERS,
                seed: int = KMEANS_SEED) -> AdaClipOutput:
        """images (B, 3, S, S); one class name per image.  aggregation=True: the inference map;
        False: the training form (per-tap softmax maps).  ``labels`` injects HSF partitions."""
        parts = self.parts
        batch = images.shape[0]
        if len(class_names) != batch:
            raise ValueError(f"{len(class_names)} class names for {batch} images")
        g = self.vision.plain_embedding(images)
        dv = parts.dynamic_visual_prompt_generator(g)
        dt = parts.dynamic_text_prompt_generator(g)
        prompted = self.vision.prompted(images, list(parts.visual_prompter.static_prompts), dv)
        patch_tokens = [F.normalize(head(tap[:, 1:]), dim=-1)
                        for head, tap in zip(parts.patch_token_layer.head, prompted.taps)]
        v = F.normalize(parts.cls_token_layer.head[0](prompted.pooled), dim=-1)
        text_static = list(parts.text_prompter.static_prompts)
        texts = torch.stack([self.text.class_features(class_names[b], text_static, dt[b]) for b in range(batch)], dim=0)
        tap_logits = [maps.pixel_logits(tokens, texts) for tokens in patch_tokens]

        probs, used = [], []
        for b in range(batch):
            given = labels[b] if labels is not None else None
            h, chosen = hsf.cluster_feature([t[b] for t in patch_tokens], [l[b] for l in tap_logits], k, given, seed)
            probs.append(hsf.fused_score(h, v[b], texts[b]))
            used.append(chosen)
        image_probs = torch.stack(probs, dim=0)
        out = AdaClipOutput(tap_logits=tap_logits, text=texts, image_probs=image_probs, raw_map=None, g=g, v=v, labels=used)
        if aggregation:
            out.raw_map = maps.aggregate_map(tap_logits, self.image_size)
        else:
            out.tap_maps = maps.tap_probability_maps(tap_logits, self.image_size)
        return out
