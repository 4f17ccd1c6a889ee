"""Pixel logits -> anomaly maps (spec §3.6, §3.8, §3.9).

The four taps are upsampled as *logits* (bilinear, align_corners=True, Q9), averaged, and only
then turned into probabilities; smoothing is scipy's own gaussian filter on the float32 map,
which is the authors' post-processing and the safest way to agree with it to 1e-3.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from adaptclip_med.methods.adaclip.constants import SMOOTHING_SIGMA, SMOOTHING_TRUNCATE, TEMPERATURE


def pixel_logits(patch_tokens: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """100 * P @ T: (B, N, D) x (B, D, 2) -> (B, N, 2)."""
    return TEMPERATURE * patch_tokens @ text


def upsample_logits(logits: torch.Tensor, size: int) -> torch.Tensor:
    """(B, N, 2) patch logits (row-major grid) -> (B, 2, size, size)."""
    batch, count, classes = logits.shape
    grid = int(round(count ** 0.5))
    if grid * grid != count:
        raise ValueError(f"{count} patch tokens are not a square grid")
    image = logits.permute(0, 2, 1).reshape(batch, classes, grid, grid)
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=True)


def aggregate_map(tap_logits: list[torch.Tensor], size: int) -> torch.Tensor:
    """Mean of the upsampled logits, softmax, (p_abn + 1 - p_norm) / 2 -> (B, size, size)."""
    mean = torch.stack([upsample_logits(l, size) for l in tap_logits], dim=0).mean(dim=0)
    probability = mean.softmax(dim=1)
    return (probability[:, 1] + 1.0 - probability[:, 0]) / 2.0


def tap_probability_maps(tap_logits: list[torch.Tensor], size: int) -> list[torch.Tensor]:
    """Training form (aggregation=False): per tap softmax of the upsampled logits, (B, 2, S, S)."""
    return [upsample_logits(l, size).softmax(dim=1) for l in tap_logits]


def smooth(maps: torch.Tensor) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter(sigma=4, mode='reflect', truncate=4) per float32 map."""
    from scipy.ndimage import gaussian_filter

    arrays = maps.detach().float().cpu().numpy()
    out = np.stack([gaussian_filter(a, sigma=SMOOTHING_SIGMA, mode="reflect", truncate=SMOOTHING_TRUNCATE)
                    for a in arrays], axis=0)
    return torch.from_numpy(out.astype(np.float32, copy=False)).to(maps.device)
