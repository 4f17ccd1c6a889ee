"""The demonstration backbone: a tiny ViT whose vision weights are set by a documented formula.

Why not random or learned weights: a random tiny ViT gives patch features in which a lesion
patch resembles some normal patch somewhere (measured: 0/3 phantom lesions found), and
pre-training a ViT on a CPU in minutes is not possible.  What the few-shot branch needs from a
backbone is a patch descriptor under which (1) a normal patch has a close match in a normal
reference slice and (2) a lesion patch has none.  A dark lesion is close to a ventricle in mean
intensity, so the descriptor keeps the intensity *pattern inside the patch* (a ventricle edge is
half CSF, half white matter; an infarct is uniformly in between) and the patch *position* (a
ventricle-like patch where the reference has parenchyma is anomalous).

Recipe (``adaptclip-demo-vit``: 8 px patches, width 64, one block, 16-d output), all exact:

* ``conv1``: channel ``j < 4`` is the mean grey level of the j-th 4x4 pixel sub-block of the
  8x8 patch, in [0, 1] window units (the CLIP mean/std normalisation is undone in the weights),
  times ``INTENSITY_GAIN``; the positional embedding adds ``-INTENSITY_GAIN * GREY_OFFSET`` so a
  white-matter-grey patch sits near zero.
* positional embedding: channels 4..7 hold ``POSITION_GAIN / w * (cos wr, sin wr, cos wc, sin wc)``
  for row and column r, c in [-1, 1] (constant norm, so every position is equally sensitive to
  intensity; a far match costs about ``POSITION_GAIN**2 * distance**2``); channel 8 a constant
  ``CONSTANT`` (so that cosine similarity tells uniform patches of different grey apart); every
  feature channel has a negated mirror (channels 9..17) and channels 62/63 hold
  ``+-STABILISER``: the per-token mean is exactly zero and the LayerNorm's standard deviation is
  dominated by the stabilisers, so ``ln_pre`` and ``ln_post`` act as fixed linear maps (their
  gains undo the scale).
* the block's attention and MLP weights are zero: both streams pass the tokens unchanged, so the
  tapped layer is the patch descriptor (one block, one tap: measured, four identical blocks
  cost four times the encoding and prompt-query training for the same maps).
* ``proj`` copies the 9 feature channels to the first 9 output dimensions.
* the text tower is random with a fixed seed (the demo adapters learn their own prompts).

The weights are computed, not downloaded: ``demo`` as ``--backbone-weights`` (architecture
``adaptclip-demo-vit``) builds them.  They have NO diagnostic value.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

#: Architecture (``model/configs``) and weights name of the demonstration backbone.
DEMO_ARCHITECTURE = "adaptclip-demo-vit"
DEMO_WEIGHTS = "demo"
#: Bump when the formula changes: recorded in the backbone identity, so banks and adapters built
#: with another version are refused instead of silently mismatched.
RECIPE_VERSION = 1
TEXT_SEED = 0

SUB_BLOCK = 4
INTENSITY_GAIN = 6.0
GREY_OFFSET = 0.35
POSITION_GAIN = 4.0
POSITION_FREQUENCY = 1.2
CONSTANT = 1.0
STABILISER = 200.0
#: OpenAI CLIP normalisation applied by the preprocessing (undone in conv1).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def weights_label() -> str:
    return f"{DEMO_WEIGHTS}:formula-v{RECIPE_VERSION}"


def is_demo_weights(weights: str | None) -> bool:
    return weights == DEMO_WEIGHTS or (weights or "").startswith(DEMO_WEIGHTS + ":formula")


def _feature_count(patch: int) -> int:
    return (patch // SUB_BLOCK) ** 2 + 5


@torch.no_grad()
def set_demo_vision_weights(visual: nn.Module) -> None:
    """Overwrite a ``adaptclip-demo-vit`` vision tower with the formula weights (see module doc)."""
    conv = visual.conv1
    width, _, patch, _ = conv.weight.shape
    grid = int(round((visual.positional_embedding.shape[0] - 1) ** 0.5))
    subs = patch // SUB_BLOCK
    n_features = _feature_count(patch)
    if 2 * n_features + 2 > width or visual.proj.shape[1] < n_features:
        raise ValueError(f"the demo formula needs width >= {2 * n_features + 2} and output >= {n_features}")
    for tensor in visual.parameters():
        tensor.zero_()
    mean_shift = sum(CLIP_MEAN) / 3.0
    # conv1: sub-block means of the grey level g (input channel c is (g - mean_c) / std_c)
    weight = torch.zeros(width, 3, patch, patch)
    for index in range(subs * subs):
        row, col = divmod(index, subs)
        for channel in range(3):
            weight[index, channel, row * SUB_BLOCK:(row + 1) * SUB_BLOCK, col * SUB_BLOCK:(col + 1) * SUB_BLOCK] = (
                INTENSITY_GAIN * CLIP_STD[channel] / (3.0 * SUB_BLOCK * SUB_BLOCK))
    # conv gives INTENSITY_GAIN * (g - mean_shift); shift to INTENSITY_GAIN * (g - GREY_OFFSET)
    offset = INTENSITY_GAIN * (mean_shift - GREY_OFFSET)
    position = torch.zeros(grid * grid + 1, width)
    position[1:, : subs * subs] = offset
    coords = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 - 1.0
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    base = subs * subs
    w = POSITION_FREQUENCY
    for offset_index, values in enumerate((torch.cos(w * rows), torch.sin(w * rows), torch.cos(w * cols), torch.sin(w * cols))):
        position[1:, base + offset_index] = POSITION_GAIN / w * values.flatten()
    position[:, base + 4] = CONSTANT
    weight[n_features:2 * n_features] = -weight[:n_features]
    position[:, n_features:2 * n_features] = -position[:, :n_features]
    position[:, width - 2], position[:, width - 1] = STABILISER, -STABILISER
    conv.weight.copy_(weight)
    visual.positional_embedding.copy_(position)
    visual.class_embedding.zero_()
    # LayerNorm std ~ STABILISER * sqrt(2 / width); the gains undo it (biases stay zero)
    gain = STABILISER * math.sqrt(2.0 / width)
    for norm in (visual.ln_pre, visual.ln_post):
        norm.weight.fill_(gain)
    for block in visual.transformer.resblocks:
        block.ln_1.weight.fill_(1.0)
        block.ln_2.weight.fill_(1.0)
    proj = torch.zeros_like(visual.proj)
    proj[torch.arange(n_features), torch.arange(n_features)] = 1.0
    visual.proj.copy_(proj)
