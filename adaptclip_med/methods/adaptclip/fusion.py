"""Fusion of the branch outputs into one anomaly map and score (spec §5).

Zero-shot (k = 0): map = mean(VA, TA) maps; score = mean(s_VA, s_TA, max(smoothed map)).
Few-shot (k >= 1): map = HM(mean(VA, TA, PQ) maps, HM over layers of the 1-NN distance maps);
score = HM(mean(s_VA, s_TA, s_PQ), max(smoothed map)).  HM is the harmonic mean.

Smoothing reproduces ``scipy.ndimage.gaussian_filter(sigma=4)`` (mode 'reflect' = symmetric edge
padding, truncate 4.0) with separable torch convolutions so it runs batched on any device.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

SMOOTHING_SIGMA = 4.0
SMOOTHING_TRUNCATE = 4.0


def harmonic_mean(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise n / sum(1/x). A zero anywhere gives 0 (1/0 = inf), as in the release."""
    stacked = torch.stack(tensors, dim=0)
    return len(tensors) / (1.0 / stacked).sum(dim=0)


@lru_cache(maxsize=8)
def _gaussian_kernel(sigma: float, truncate: float) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _symmetric_pad(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """scipy 'reflect' padding (d c b a | a b c d | d c b a), repeated for tiny inputs."""
    size = x.shape[dim]
    index = torch.arange(-radius, size + radius, device=x.device)
    period = 2 * size
    index = torch.remainder(index, period)
    index = torch.where(index >= size, period - 1 - index, index)
    return x.index_select(dim, index)


def gaussian_smooth(maps: torch.Tensor, sigma: float = SMOOTHING_SIGMA, truncate: float = SMOOTHING_TRUNCATE) -> torch.Tensor:
    """Smooth (B, H, W) maps like scipy.ndimage.gaussian_filter(map, sigma) per image."""
    kernel = _gaussian_kernel(float(sigma), float(truncate)).to(device=maps.device, dtype=maps.dtype)
    radius = (kernel.numel() - 1) // 2
    x = maps.unsqueeze(1)
    x = _symmetric_pad(x, radius, dim=2)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    x = _symmetric_pad(x, radius, dim=3)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return x.squeeze(1)


def anomaly_probability(logits: torch.Tensor) -> torch.Tensor:
    """Branch score: softmax(logits)[anomaly]."""
    return logits.softmax(dim=-1)[..., 1]


def fuse(va_map: torch.Tensor, ta_map: torch.Tensor, va_score: torch.Tensor, ta_score: torch.Tensor,
         pq_map: torch.Tensor | None = None, pq_score: torch.Tensor | None = None,
         distance_maps: list[torch.Tensor] | None = None, smooth: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine branch maps (B, H, W) and scores (B,) into the final map (B, H, W) and score (B,).

    ``pq_map``/``pq_score`` are already averaged over layers; ``distance_maps`` are the per-layer
    1-NN distance maps (B, H, W).  Pass all three for few-shot, none for zero-shot.
    """
    if pq_map is None:
        fused = (va_map + ta_map) / 2
    else:
        adapters = (va_map + ta_map + pq_map) / 3
        fused = harmonic_mean([adapters, harmonic_mean(distance_maps)])
    if smooth:
        fused = gaussian_smooth(fused)
    fused = torch.nan_to_num(fused, nan=0.0, posinf=0.0, neginf=0.0)
    peak = fused.flatten(1).max(dim=1).values
    if pq_map is None:
        score = (va_score + ta_score + peak) / 3
    else:
        score = harmonic_mean([(va_score + ta_score + pq_score) / 3, peak])
    return fused, score
