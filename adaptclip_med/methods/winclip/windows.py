"""Sliding windows on the patch grid and WinCLIP's harmonic aggregation (spec §4, §5).

Kept apart from the model because both are pure index arithmetic: they are where a stride, an
enumeration order or an aggregation rule would silently move map values, so they are tested
against hand-computed cases on their own.
"""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=32)
def window_indices(grid: int, scale: int) -> torch.Tensor:
    """(n_windows, scale*scale) long patch indices of every ``scale`` x ``scale`` window at stride 1.

    Windows are enumerated row-major by their top-left corner (r outer, c inner, 0 <= r, c <=
    grid - scale); inside a window the patches are row-major too: ``(r+i)*grid + (c+j)``.  No
    padding, so there are ``(grid - scale + 1)**2`` windows."""
    if not 1 <= scale <= grid:
        raise ValueError(f"window scale {scale} does not fit a {grid}x{grid} patch grid")
    offsets = torch.arange(scale)
    inner = (offsets[:, None] * grid + offsets[None, :]).reshape(-1)
    corners = torch.arange(grid - scale + 1)
    starts = (corners[:, None] * grid + corners[None, :]).reshape(-1)
    return starts[:, None] + inner[None, :]


@lru_cache(maxsize=32)
def coverage_matrix(grid: int, scale: int) -> torch.Tensor:
    """(n_windows, grid*grid) float32 0/1 matrix: entry (w, p) is 1 when window w covers patch p."""
    indices = window_indices(grid, scale)
    cover = torch.zeros(indices.shape[0], grid * grid)
    cover.scatter_(1, indices, 1.0)
    return cover


def harmonic_aggregate(window_scores: torch.Tensor, grid: int, scale: int) -> torch.Tensor:
    """Spread per-window scores (B, n_windows) onto the patch grid -> (B, grid, grid).

    Patch p gets ``n_p / sum_{w covers p} 1/score_w`` (the harmonic mean of the scores of the
    windows covering it), which lets one low-scoring window pull a patch down: WinCLIP's choice,
    reproduced exactly.  An uncovered patch, or one covered by a window scoring exactly 0, gets 0."""
    cover = coverage_matrix(grid, scale).to(device=window_scores.device, dtype=window_scores.dtype)
    if window_scores.shape[-1] != cover.shape[0]:
        raise ValueError(f"{window_scores.shape[-1]} window scores for {cover.shape[0]} windows of scale {scale}")
    counts = cover.sum(dim=0)
    zero = window_scores == 0
    # 1/0 = inf and inf * 0 = nan inside a matmul: sum the finite inverses, then zero the patches
    # that a 0-scoring window covers (their harmonic mean is 0).
    inverse_sum = torch.where(zero, torch.zeros_like(window_scores), 1.0 / window_scores) @ cover
    touched_by_zero = (zero.to(cover.dtype) @ cover) > 0
    patch = torch.where((counts > 0) & ~touched_by_zero, counts / inverse_sum, torch.zeros_like(inverse_sum))
    return patch.reshape(-1, grid, grid)


def harmonic_mean(maps: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise harmonic mean ``n / sum 1/m`` of equally shaped maps (zero-shot fusion)."""
    return len(maps) / sum(1.0 / m for m in maps)
