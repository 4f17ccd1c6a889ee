"""The 38 trainable tensors of AdaCLIP, under the authors' names (spec §2).

The module tree mirrors the released checkpoint's keys minus the ``clip_model.`` prefix
(``visual_prompter.static_prompts.2``, ``patch_token_layer.head.3.weight`` ...), so importing a
release is a plain ``load_state_dict`` and ``state_dict()`` lists exactly the 38 tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from adaptclip_med.methods.adaclip.constants import (
    FRESH_INIT_SEED,
    N_TAPS,
    PROMPT_DEPTH,
    PROMPT_LENGTH,
    STATIC_PROMPT_STD,
)

RELEASE_PREFIX = "clip_model."


@dataclass(frozen=True)
class PartDims:
    """Channel counts the trainable tensors depend on: vision width Wv and embedding dim D
    (AdaCLIP uses D as the text width too, so the backbone must have text width == D)."""

    vision_width: int
    embed_dim: int
    prompt_length: int = PROMPT_LENGTH
    prompt_depth: int = PROMPT_DEPTH
    n_taps: int = N_TAPS


class _Prompter(nn.Module):
    """``static_prompts.{i}``: one (L, C) prompt per prompted block."""

    def __init__(self, depth: int, length: int, channels: int) -> None:
        super().__init__()
        self.static_prompts = nn.ParameterList([nn.Parameter(torch.empty(length, channels)) for _ in range(depth)])


class _Heads(nn.Module):
    """``head.{j}``: a list of Linear layers (one per tap, or one per prompt token)."""

    def __init__(self, count: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.head = nn.ModuleList([nn.Linear(in_features, out_features) for _ in range(count)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One Linear per output token, stacked on a new token axis: (B, C) -> (B, count, out)."""
        return torch.stack([layer(x) for layer in self.head], dim=1)


class AdaClipParts(nn.Module):
    """Static prompts, dynamic prompt generators and projection heads."""

    def __init__(self, dims: PartDims, seed: int | None = FRESH_INIT_SEED) -> None:
        super().__init__()
        self.dims = dims
        generator_state = torch.random.get_rng_state()
        if seed is not None:  # a fresh model is reproducible and does not disturb the caller's RNG
            torch.manual_seed(seed)
        try:
            d, wv, length = dims.embed_dim, dims.vision_width, dims.prompt_length
            self.text_prompter = _Prompter(dims.prompt_depth, length, d)
            self.visual_prompter = _Prompter(dims.prompt_depth, length, wv)
            self.patch_token_layer = _Heads(dims.n_taps, wv, d)
            self.cls_token_layer = _Heads(1, d, d)
            self.dynamic_visual_prompt_generator = _Heads(length, d, wv)
            self.dynamic_text_prompt_generator = _Heads(length, d, d)
            for prompter in (self.text_prompter, self.visual_prompter):
                for p in prompter.static_prompts:
                    nn.init.normal_(p, std=STATIC_PROMPT_STD)
        finally:
            if seed is not None:
                torch.random.set_rng_state(generator_state)

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Key (without prefix) -> shape, for checking a checkpoint before loading it."""
        return {k: tuple(v.shape) for k, v in self.state_dict().items()}

    def release_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors under the released checkpoint's key names (``clip_model.`` prefix)."""
        return {RELEASE_PREFIX + k: v for k, v in self.state_dict().items()}
