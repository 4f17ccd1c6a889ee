"""The three AdaptCLIP adapters (spec §2-4).

* :class:`TextualAdapter` learns a normal and an abnormal prompt (r token embeddings each) and
  scores the UNADAPTED image features against them.
* :class:`VisualAdapter` adapts the global and local image features with residual bottleneck MLPs
  and scores them against the STATIC text.
* :class:`PromptQueryAdapter` compares a query with k normal reference images (1-NN over patches)
  and predicts anomaly maps and scores from the context + aligned-residual feature.

Keeping VA away from the learned text and TA away from adapted features is the paper's
"alternating" (decoupled) learning; one optimiser step over all adapters is then correct.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.model.nn_search import nearest_neighbours

#: Temperature dividing every image-text cosine similarity (the CLIP logit_scale is not used).
TEMPERATURE = 0.07
PQ_MID_CHANNELS = 128
TOPK_POOL = 10


def text_logits(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """cos(image, text) / 0.07 over the last dim: (..., D) x (2, D) -> (..., 2)."""
    image = F.normalize(image_features, dim=-1)
    text = F.normalize(text_features, dim=-1)
    return image @ text.t() / TEMPERATURE


def patch_probability_map(patch_tokens: torch.Tensor, text_features: torch.Tensor, grid: tuple[int, int],
                          size: tuple[int, int]) -> torch.Tensor:
    """Softmax over (normal, abnormal) per patch, then bilinear to ``size``: (B, N, D) -> (B, 2, H, W).
    The softmax happens before upsampling, as in the release."""
    probs = text_logits(patch_tokens, text_features).softmax(dim=-1)
    batch = probs.shape[0]
    probs = probs.transpose(1, 2).reshape(batch, 2, grid[0], grid[1])
    return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------- TA
class TextualAdapter(nn.Module):
    """Learned prompts: [SOT][r learned tokens][. EOT pad...] for 'normal' and 'abnormal'.

    The frozen prefix/suffix embeddings and token ids are buffers (as in the release) so a
    checkpoint fully defines the prompts; at inference the resulting text features are constant
    and cached until the parameters change (train mode or a new state dict).
    """

    def __init__(self, text_width: int, context_length: int, prompt_length: int = 12) -> None:
        super().__init__()
        self.prompt_length = prompt_length
        self.ctx_normal = nn.Parameter(torch.empty(prompt_length, text_width).normal_(std=0.02))
        self.ctx_abnormal = nn.Parameter(torch.empty(prompt_length, text_width).normal_(std=0.02))
        suffix_length = context_length - 1 - prompt_length
        self.register_buffer("prefix", torch.zeros(2, 1, text_width))
        self.register_buffer("suffix", torch.zeros(2, suffix_length, text_width))
        self.register_buffer("token_ids", torch.zeros(2, context_length, dtype=torch.int32))
        self._cached: torch.Tensor | None = None

    @torch.no_grad()
    def initialise_from_backbone(self, backbone) -> None:
        """Fill the frozen prefix/suffix/token ids from the placeholder sentence (spec §2)."""
        from adaptclip_med.model.prompts import placeholder_sentence

        tokens = backbone.tokenize([placeholder_sentence(self.prompt_length)]).to(self.prefix.device)
        embedded = backbone.token_embeddings(tokens)[0]
        self.prefix.copy_(embedded[:1].expand(2, 1, -1))
        self.suffix.copy_(embedded[1 + self.prompt_length:].expand(2, -1, -1))
        self.token_ids.copy_(tokens.to(torch.int32).expand(2, -1))
        self._cached = None

    def text_features(self, backbone) -> torch.Tensor:
        """(2, D) learned text features, row 0 normal, row 1 abnormal."""
        if not self.training and self._cached is not None:
            return self._cached
        ctx = torch.stack([self.ctx_normal, self.ctx_abnormal], dim=0)
        embeddings = torch.cat([self.prefix, ctx, self.suffix], dim=1)
        features = backbone.encode_text_embeddings(embeddings, self.token_ids.long().argmax(dim=-1))
        if not self.training:
            self._cached = features.detach()
        return features

    def invalidate_cache(self) -> None:
        self._cached = None

    def _apply(self, fn, *args, **kwargs):
        """Moving the adapter (``.to(device)``, dtype changes) drops the cached features, which
        were computed on the old device; they are recomputed (two sentences) on next use."""
        self._cached = None
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> "TextualAdapter":
        self._cached = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: D401 - torch hook
        self._cached = None
        super()._load_from_state_dict(*args, **kwargs)


# ---------------------------------------------------------------------------------------- VA
class ResidualMLP(nn.Module):
    """y = x + MLP(x), MLP = Linear(D, D/r) -> BN -> ReLU -> Linear(D/r, D); tokens are flattened so
    the BatchNorm statistics span all tokens of the batch."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = dim // reduction
        self.net = nn.Sequential(
            nn.Linear(dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        return (flat + self.net(flat)).reshape(x.shape)


class VisualAdapter(nn.Module):
    """Residual MLPs on the global feature and on the last tapped layer's tokens (CLS included)."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        self.global_adapter = ResidualMLP(dim, reduction)
        self.local_adapter = ResidualMLP(dim, reduction)

    def forward(self, global_token: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.global_adapter(global_token), self.local_adapter(tokens)


# ---------------------------------------------------------------------------------------- PQA
def _pixel_head(dim: int, mid: int = PQ_MID_CHANNELS) -> nn.Sequential:
    half = mid // 2
    return nn.Sequential(
        nn.Conv2d(dim, mid, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, mid, kernel_size=2, stride=2),
        nn.Conv2d(mid, half, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(half, half, kernel_size=2, stride=2),
        nn.Conv2d(half, 2, kernel_size=1),
    )


def _image_head(dim: int, mid: int = PQ_MID_CHANNELS) -> nn.Sequential:
    half = mid // 2
    return nn.Sequential(
        nn.Linear(dim, mid, bias=False),
        nn.BatchNorm1d(mid),
        nn.ReLU(inplace=True),
        nn.Linear(mid, half, bias=False),
        nn.BatchNorm1d(half),
        nn.ReLU(inplace=True),
        nn.Linear(half, 2, bias=False),
    )


def topk_mean_pool(features: torch.Tensor, k: int = TOPK_POOL) -> torch.Tensor:
    """(B, D, G, G) -> (B, D): (mean + mean of the top-k values over positions) / 2."""
    flat = features.flatten(2)
    top = flat.topk(min(k, flat.shape[-1]), dim=-1).values.mean(dim=-1)
    return (flat.mean(dim=-1) + top) / 2


@dataclass
class PromptQueryLayerOutput:
    """One tapped layer's PQA result. Maps are at the input size.

    logits: (B, 2) image logits; prob_map: (B, 2, H, W) pixel softmax; distance_map: (B, 1, H, W)
    training-free 1-NN cosine distance to the references.
    """

    logits: torch.Tensor
    prob_map: torch.Tensor
    distance_map: torch.Tensor


class PromptQueryAdapter(nn.Module):
    """Few-shot query/reference comparison with per-layer BN and heads shared by all layers."""

    def __init__(self, dim: int, num_layers: int = 4, use_context: bool = True, mid: int = PQ_MID_CHANNELS) -> None:
        super().__init__()
        self.use_context = use_context
        self.layer_norms = nn.ModuleList(nn.BatchNorm2d(dim) for _ in range(num_layers))
        self.pixel_head = _pixel_head(dim, mid)
        self.image_head = _image_head(dim, mid)

    def forward_layer(self, layer: int, query_tokens: torch.Tensor, reference_patches: torch.Tensor,
                      grid: tuple[int, int], size: tuple[int, int], chunk_size: int = 4096) -> PromptQueryLayerOutput:
        """query_tokens: (B, N+1, D) raw tapped tokens; reference_patches: (B or 1, M, D) L2-normalised
        reference patches (CLS already dropped; M = k*N pooled over all k references)."""
        query = F.normalize(query_tokens, dim=-1)[:, 1:]
        distance, nn_index = nearest_neighbours(query, reference_patches, chunk_size)
        memory = reference_patches.expand(query.shape[0], -1, -1) if reference_patches.shape[0] == 1 else reference_patches
        aligned = torch.gather(memory, 1, nn_index.unsqueeze(-1).expand(-1, -1, memory.shape[-1]))
        residual = (query - aligned).abs()
        fused = query + residual if self.use_context else residual
        batch = fused.shape[0]
        fused = fused.transpose(1, 2).reshape(batch, -1, grid[0], grid[1])
        fused = self.layer_norms[layer](fused)
        pixel_logits = self.pixel_head(fused)
        prob_map = F.interpolate(pixel_logits.softmax(dim=1), size=size, mode="bilinear", align_corners=False)
        logits = self.image_head(topk_mean_pool(fused))
        distance_map = F.interpolate(distance.reshape(batch, 1, grid[0], grid[1]), size=size, mode="bilinear",
                                     align_corners=False)
        return PromptQueryLayerOutput(logits=logits, prob_map=prob_map, distance_map=distance_map)
