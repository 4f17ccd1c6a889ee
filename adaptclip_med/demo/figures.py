"""The demo's pictures, made to be looked at: overlays at display size and the score plot.

An overlay shows the slice at >= 512 px with the anomaly map as a heat map (scaled to a stated
range, with its colour bar), the model's mask outline (cyan, map >= threshold) and the ground
truth outline (lime), titled with slice index and slice score.  The score plot marks the slice
threshold line and shades the slices that hold a lesion.  Both say SYNTHETIC / no diagnostic
value on the picture itself, since pictures travel without their captions.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from adaptclip_med.outputs.overlay import mask_outline
from adaptclip_med.utils.atomic import atomic_write_bytes

DISPLAY_SIZE = 512
MASK_RGB = (0, 255, 255)
TRUTH_RGB = (50, 255, 50)
SYNTHETIC_NOTE = "SYNTHETIC phantom, demo model - no diagnostic value"


def _resize(array: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(np.asarray(array, dtype=np.float32)).resize((size, size), mode), dtype=np.float32)


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(Path(path), buffer.getvalue())


def overlay_rgb(slice01: np.ndarray, probability: np.ndarray, truth: np.ndarray | None, threshold: float,
                vmax: float, size: int = DISPLAY_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: grey slice, heat map of ``probability / vmax`` blended by its own
    strength, mask outline and ground-truth outline, all resampled to ``size``."""
    grey = np.clip(_resize(slice01, size), 0.0, 1.0)
    prob = _resize(probability, size)
    scaled = np.clip(prob / max(vmax, 1e-12), 0.0, 1.0)
    heat = colormaps["jet"](scaled)[..., :3]
    weight = 0.6 * scaled[..., None]
    rgb = np.round(((1 - weight) * grey[..., None] + weight * heat) * 255).astype(np.uint8)
    outline = mask_outline(prob >= threshold)
    rgb[outline | np.roll(outline, 1, axis=1)] = MASK_RGB
    if truth is not None:
        edge = mask_outline(_resize(truth > 0, size, nearest=True) > 0.5)
        rgb[edge | np.roll(edge, 1, axis=0) | np.roll(edge, 1, axis=1)] = TRUTH_RGB
    return rgb


def save_display_overlay(path: Path, slice01: np.ndarray, probability: np.ndarray, truth: np.ndarray | None,
                         threshold: float, vmax: float, slice_index: int, score: float) -> Path:
    """PNG: :func:`overlay_rgb` at 512 px with a colour bar, title and legend."""
    figure = Figure(figsize=(7.4, 6.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.01, 0.07, 0.80, 0.84))  # 592 x 538 px: the 512 px image fits unscaled
    axes.imshow(overlay_rgb(slice01, probability, truth, threshold, vmax), interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(f"slice {slice_index + 1}   slice score {score:.4f}   pixel threshold {threshold:.4f}", fontsize=11)
    bar_axes = figure.add_axes((0.84, 0.12, 0.03, 0.74))
    bar = figure.colorbar(ScalarMappable(Normalize(0.0, vmax), colormaps["jet"]), cax=bar_axes)
    bar.set_label("anomaly map", fontsize=9)
    bar.ax.axhline(threshold, color="cyan", linewidth=2)
    figure.text(0.01, 0.025, "cyan: model mask (map >= threshold)   lime: ground truth   " + SYNTHETIC_NOTE, fontsize=7.5)
    return _save(figure, path)


def save_demo_score_plot(path: Path, scores: Sequence[float], lesion_slices: Sequence[int], threshold: float | None,
                         title: str) -> Path:
    """Slice score against the 1-based slice number (the viewer's); lesion slices shaded, ``threshold`` as a dashed line."""
    values = np.asarray(scores, dtype=np.float64)
    figure = Figure(figsize=(7.4, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for count, z in enumerate(lesion_slices):
        axes.axvspan(z + 0.5, z + 1.5, color="tab:green", alpha=0.18, linewidth=0, label="slice with a lesion (truth)" if count == 0 else None)
    index = np.arange(1, values.size + 1)
    finite = np.isfinite(values)
    axes.plot(index[finite], values[finite], "-o", color="tab:blue", markersize=4, label="slice score")
    if threshold is not None:
        axes.axhline(threshold, linestyle="--", color="tab:orange", label=f"slice score threshold {threshold:.4f} (highest normal-reference slice score)")
        above = finite & (values >= threshold)
        axes.plot(index[above], values[above], "o", color="tab:red", markersize=7, label="above threshold")
    axes.set_xlabel("slice (1-based, as in the viewer)")
    axes.set_ylabel("slice anomaly score")
    axes.set_xlim(0.5, values.size + 0.5)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", frameon=False)
    figure.text(0.01, 0.01, SYNTHETIC_NOTE, fontsize=7)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(figure, path)
