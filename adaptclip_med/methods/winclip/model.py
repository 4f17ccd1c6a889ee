"""WinCLIP's numbers: the vision forwards (spec §4) and the zero-/few-shot scoring (spec §5-7).

Everything here is plain functions over an open_clip CLIP and tensors, so the method class
(``method.py``) only maps the contract onto them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.methods.winclip.windows import harmonic_aggregate, harmonic_mean, window_indices

#: Window sides in patches (spec §4); the full image counts as one more "scale" in the zero-shot fusion.
SCALES: tuple[int, ...] = (2, 3)
#: Fixed softmax temperature (spec §5, quirk 3): the checkpoint's logit_scale is not used.
TEMPERATURE = 0.07
#: Window sequences per transformer call (bounds memory for large batches; results do not depend on it).
_WINDOW_CHUNK = 2048


@dataclass
class WinClipEncoded:
    """Image-side features of B images.

    image_embedding: (B, D) ln_post(CLS) @ proj, unnormalised.
    patch_embeddings: (B, G*G, W) ln_post of the patch tokens, NOT projected (few-shot patch level).
    window_embeddings: {scale: (B, n_windows, D)} ln_post(CLS) @ proj of each window forward.
    grid: G; input_size: (H, W) of the model input, the size the final map is upsampled to.
    """

    image_embedding: torch.Tensor
    patch_embeddings: torch.Tensor
    window_embeddings: dict[int, torch.Tensor]
    grid: int
    input_size: tuple[int, int]


@dataclass
class WinClipMemory:
    """Few-shot memory of k normal images, every position of every image pooled (the nearest
    neighbour is searched over the whole memory, spec §6).

    patches: (k*G*G, W); windows: {scale: (k*n_windows, D)}; shots: k."""

    patches: torch.Tensor
    windows: dict[int, torch.Tensor] = field(default_factory=dict)
    shots: int = 0

    def to(self, device: torch.device) -> "WinClipMemory":
        return WinClipMemory(self.patches.to(device, torch.float32),
                             {s: w.to(device, torch.float32) for s, w in self.windows.items()}, self.shots)


def resized_position_table(positional_embedding: torch.Tensor, grid: int) -> torch.Tensor:
    """Position table for a ``grid`` x ``grid`` patch grid: the patch part resized bicubically
    (align_corners False, no antialias), the CLS row kept.  Only used for a non-native
    ``image_size``; the native size uses the checkpoint's table untouched (the checked path)."""
    cls_pos, patch_pos = positional_embedding[:1], positional_embedding[1:]
    native = int(round(patch_pos.shape[0] ** 0.5))
    if native == grid:
        return positional_embedding
    width = patch_pos.shape[1]
    table = patch_pos.reshape(1, native, native, width).permute(0, 3, 1, 2)
    table = F.interpolate(table, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([cls_pos, table.permute(0, 2, 3, 1).reshape(grid * grid, width)], dim=0)


def embed_tokens(visual: nn.Module, images: torch.Tensor, position_table: torch.Tensor) -> torch.Tensor:
    """(B, 1+G*G, W) token sequence after the positional embedding and BEFORE ln_pre: the tensor
    the window branch selects from (anomalib reads it at the patch-dropout input; patch dropout
    is the identity at inference)."""
    x = visual.conv1(images)
    x = x.flatten(2).transpose(1, 2)
    cls_token = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls_token, x], dim=1)
    return x + position_table.to(x.dtype)


def window_sequences(tokens: torch.Tensor, grid: int, scale: int) -> torch.Tensor:
    """(B, n_windows, 1+scale*scale, W): for each window, [CLS, its patches] selected from the
    pre-ln_pre ``tokens`` (each keeps its own positional embedding)."""
    patches = window_indices(grid, scale).to(tokens.device) + 1
    cls_index = torch.zeros(patches.shape[0], 1, dtype=patches.dtype, device=patches.device)
    selection = torch.cat([cls_index, patches], dim=1)  # (n, 1+s*s)
    return tokens[:, selection]


def class_token_embedding(visual: nn.Module, sequences: torch.Tensor) -> torch.Tensor:
    """(N, T, W) pre-ln_pre sequences -> (N, D): ln_pre once, all blocks, ln_post(CLS) @ proj.

    open_clip >= 2.26.1 transformers are batch-first; the tensor is passed as (N, T, W) and the
    transformer module handles its own layout, so no permute here (anomalib's permute to
    sequence-first is correct only on open_clip <= 2.24, spec quirk 1)."""
    outputs = []
    for start in range(0, sequences.shape[0], _WINDOW_CHUNK):
        x = visual.ln_pre(sequences[start:start + _WINDOW_CHUNK])
        x = visual.transformer(x)
        outputs.append(visual.ln_post(x[:, 0]) @ visual.proj)
    return torch.cat(outputs, dim=0)


@torch.no_grad()
def encode_images(visual: nn.Module, images: torch.Tensor, position_table: torch.Tensor, patch_size: int,
                  scales: tuple[int, ...] = SCALES) -> WinClipEncoded:
    """One full forward plus one short forward per window and scale (spec §4)."""
    height, width = images.shape[-2:]
    tokens = embed_tokens(visual, images, position_table)
    grid = height // patch_size
    full = visual.ln_post(visual.transformer(visual.ln_pre(tokens)))
    image_embedding = full[:, 0] @ visual.proj
    patch_embeddings = full[:, 1:]
    windows: dict[int, torch.Tensor] = {}
    for scale in scales:
        seqs = window_sequences(tokens, grid, scale)
        batch, count = seqs.shape[:2]
        windows[scale] = class_token_embedding(visual, seqs.flatten(0, 1)).reshape(batch, count, -1)
    return WinClipEncoded(image_embedding, patch_embeddings, windows, grid, (int(height), int(width)))


def class_scores(embeddings: torch.Tensor, text: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """(..., D) embeddings, (2, D) [normal, anomalous] text -> (...) anomalous probability:
    softmax over the two cosines / temperature, anomalous entry."""
    logits = F.normalize(embeddings, dim=-1) @ F.normalize(text, dim=-1).T / temperature
    return logits.softmax(dim=-1)[..., 1]


def zero_shot(encoded: WinClipEncoded, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_img (B,), zero-shot grid map (B, G, G)): harmonic mean of a constant s_img map and the
    harmonically aggregated window maps of every scale (spec §5)."""
    image_score = class_scores(encoded.image_embedding, text)
    grid = encoded.grid
    maps = [image_score[:, None, None].expand(-1, grid, grid)]
    for scale, embeddings in encoded.window_embeddings.items():
        maps.append(harmonic_aggregate(class_scores(embeddings, text), grid, scale))
    return image_score, harmonic_mean(maps)


def nearest_distance(queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """(B, n, C) queries, (M, C) memory -> (B, n) halved cosine distance (1 - cos) / 2 to the
    nearest memory entry.

    The neighbour is found with one matmul; its distance is then recomputed as
    ``|q/|q| - m/|m||^2 / 4``, the same quantity, which is exactly 0 for an identical vector and
    never negative (spec quirk 11: a rounded 1 - cos can dip below 0 and flip the harmonic mean)."""
    q = F.normalize(queries, dim=-1)
    m = F.normalize(memory, dim=-1)
    nearest = (q @ m.T).argmax(dim=-1)  # (B, n)
    difference = q - m[nearest]
    return (difference.square().sum(dim=-1) / 4.0).clamp_min(0.0)


def few_shot(encoded: WinClipEncoded, memory: WinClipMemory) -> torch.Tensor:
    """(B, G, G) few-shot map: arithmetic mean of the patch-level map (unprojected tokens) and
    the harmonically aggregated window maps of every scale (spec §6)."""
    grid = encoded.grid
    maps = [nearest_distance(encoded.patch_embeddings, memory.patches).reshape(-1, grid, grid)]
    for scale, embeddings in encoded.window_embeddings.items():
        maps.append(harmonic_aggregate(nearest_distance(embeddings, memory.windows[scale]), grid, scale))
    return torch.stack(maps).mean(dim=0)


def upsample(grid_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, G, G) -> (B, H, W): bilinear, align_corners False, no antialias, no smoothing (spec §7)."""
    return F.interpolate(grid_map[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
