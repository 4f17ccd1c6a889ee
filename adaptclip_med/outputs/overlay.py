"""Heat-map overlays of anomaly probabilities on the grey slice, for review and reports.

The heat map is blended with a per-pixel weight ``alpha * probability`` so normal tissue keeps its
grey appearance and only suspicious regions are tinted; the outline of ``probability >=
threshold`` is drawn in a solid colour so the reported mask is visible even where the tint is
faint.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from adaptclip_med.utils.atomic import atomic_write_bytes

CONTOUR_RGB = (0, 255, 255)


def _resize(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if prob.shape == shape:
        return prob
    image = Image.fromarray(prob.astype(np.float32)).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` that touch a non-mask pixel (4-neighbourhood); image borders count as outside."""
    padded = np.pad(mask.astype(bool), 1, constant_values=False)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask.astype(bool) & ~interior


def render_overlay(slice01: np.ndarray, prob: np.ndarray, threshold: float = 0.5, alpha: float = 0.5,
                   colormap: str = "jet") -> np.ndarray:
    """RGB uint8 (H, W, 3): grey ``slice01`` with ``prob`` (resized to it if needed) as a heat map
    and the outline of ``prob >= threshold``."""
    grey = np.clip(np.asarray(slice01, dtype=np.float32), 0.0, 1.0)
    if grey.ndim != 2:
        raise ValueError(f"slice must be 2-D, got shape {grey.shape}")
    p = np.clip(np.nan_to_num(_resize(np.asarray(prob, dtype=np.float32), grey.shape)), 0.0, 1.0)
    heat = colormaps[colormap](p)[..., :3].astype(np.float32)
    weight = (float(np.clip(alpha, 0.0, 1.0)) * p)[..., None]
    rgb = (1.0 - weight) * grey[..., None] + weight * heat
    out = np.round(rgb * 255.0).astype(np.uint8)
    out[mask_outline(p >= threshold)] = CONTOUR_RGB
    return out


def save_overlay_png(path: str | Path, slice01: np.ndarray, prob: np.ndarray, threshold: float = 0.5,
                     alpha: float = 0.5) -> Path:
    """:func:`render_overlay` written as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(render_overlay(slice01, prob, threshold, alpha)).save(buffer, format="PNG")
    return atomic_write_bytes(Path(path), buffer.getvalue())
