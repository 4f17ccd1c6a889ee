"""AdaCLIP's two vision passes over a frozen open_clip ViT (spec §3.2-§3.3).

* the **plain** pass gives the unprompted image embedding g that drives the dynamic prompts (Q5);
* the **prompted** pass appends L prompt tokens after pos-embed and ln_pre, refreshes them before
  blocks 1..3, carries them afterwards, and taps the raw residual stream (Q3).

The position table is resized here (bicubic, align_corners False, antialias off, CLS kept: Q2)
rather than with ``ClipBackbone.positional_embedding`` (bilinear), because the authors' loader
resizes it that way and the features depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.methods.adaclip.constants import N_TAPS


def resize_position_table(table: torch.Tensor, grid: int) -> torch.Tensor:
    """(1 + g*g, W) table -> (1 + grid*grid, W): CLS row kept, patch rows (row-major) resized as
    an image with bicubic interpolation, align_corners False, **no antialias** (PyTorch default)."""
    cls_row, patch_rows = table[:1], table[1:]
    native = int(round(patch_rows.shape[0] ** 0.5))
    if native * native != patch_rows.shape[0]:
        raise ValueError(f"position table with {patch_rows.shape[0]} patch rows is not a square grid")
    if native == grid:
        return table
    width = patch_rows.shape[1]
    image = patch_rows.reshape(1, native, native, width).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False, antialias=False)
    patch_rows = image.permute(0, 2, 3, 1).reshape(grid * grid, width)
    return torch.cat([cls_row, patch_rows], dim=0)


def tap_blocks(depth: int) -> tuple[int, ...]:
    """1-based blocks after which the stream is tapped: n/4, n/2, 3n/4, n (6/12/18/24 for ViT-L)."""
    if depth < N_TAPS:
        raise ValueError(f"AdaCLIP needs at least {N_TAPS} vision blocks, the backbone has {depth}")
    return tuple(int(round(depth * (i + 1) / N_TAPS)) for i in range(N_TAPS))


def half_round(x: torch.Tensor) -> torch.Tensor:
    """Round to float16 and back (the authors' ``.half()`` before concatenation, Q6); gradients
    pass through the casts unchanged."""
    return x.half().to(x.dtype)


@dataclass
class PromptedVision:
    """Prompted-pass outputs: taps (one (B, 1+N, Wv) raw residual stream per tap, prompts
    removed, CLS at 0) and the pooled embedding p = ln_post(CLS) @ proj, (B, D)."""

    taps: list[torch.Tensor]
    pooled: torch.Tensor


class VisionTower:
    """Runs open_clip's ``clip.visual`` blocks with AdaCLIP's token handling."""

    def __init__(self, visual: nn.Module, image_size: int) -> None:
        self.visual = visual
        self.patch_size = int(visual.conv1.kernel_size[0])
        if image_size % self.patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {self.patch_size}")
        self.image_size = image_size
        self.grid = image_size // self.patch_size
        self.blocks = list(visual.transformer.resblocks)
        self.taps = tap_blocks(len(self.blocks))
        with torch.no_grad():
            self.position = resize_position_table(visual.positional_embedding.detach().float(), self.grid)

    @property
    def width(self) -> int:
        return int(self.visual.conv1.out_channels)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """conv1 patches (row-major) + CLS, + resized position table, ln_pre -> (B, 1+N, Wv)."""
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"input is {tuple(images.shape[-2:])}, expected {self.image_size}x{self.image_size}")
        visual = self.visual
        x = visual.conv1(images.to(visual.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.position.to(device=x.device, dtype=x.dtype)
        return visual.ln_pre(x)

    def pool(self, cls_token: torch.Tensor) -> torch.Tensor:
        """ln_post(CLS) @ proj."""
        return self.visual.ln_post(cls_token) @ self.visual.proj

    @torch.no_grad()
    def plain_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """g: the unprompted CLS embedding (not normalised), (B, D); no gradient (spec §3.2)."""
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.pool(x[:, 0])

    def prompted(self, images: torch.Tensor, static_prompts: list[torch.Tensor],
                 dynamic: torch.Tensor) -> PromptedVision:
        """Prompted pass.  static_prompts: (L, Wv) for blocks 0..depth-1; dynamic: (B, L, Wv)."""
        with torch.no_grad():
            x = self.embed(images)
        length = dynamic.shape[1]
        taps: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks):
            if index < len(static_prompts):
                prompt = half_round(static_prompts[index].unsqueeze(0) + dynamic).to(x.dtype)
                body = x if index == 0 else x[:, :-length]
                x = torch.cat([body, prompt], dim=1)
            x = block(x)
            if index + 1 in self.taps:
                taps.append(x[:, :-length])
        return PromptedVision(taps=taps, pooled=self.pool(x[:, 0]))
