"""Per-slice score curve of a study with the top slices marked (matplotlib, Agg, no global state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adaptclip_med.utils.atomic import atomic_write_bytes


def save_score_plot(path: str | Path, positions: Sequence[float], scores: Sequence[float], skipped: Sequence[bool],
                    top_indices: Sequence[int], threshold: float | None = None, title: str | None = None,
                    labels: Sequence[str] | None = None) -> Path:
    """PNG of slice score against position (mm).  Skipped slices appear as grey ticks at the
    bottom, top slices as red markers labelled (``labels``, default the 1-based slice number), an optional threshold as a
    dashed line.  Built on a private Figure so concurrent callers do not share pyplot state."""
    pos = np.asarray(positions, dtype=np.float64)
    val = np.asarray(scores, dtype=np.float64)
    skip = np.asarray(skipped, dtype=bool)
    if not (pos.shape == val.shape == skip.shape):
        raise ValueError("positions, scores and skipped must have the same length")
    figure = Figure(figsize=(7.0, 3.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    scored = ~skip & np.isfinite(val)
    axes.plot(pos[scored], val[scored], "-o", color="tab:blue", markersize=3, linewidth=1.2, label="slice score")
    if skip.any():
        axes.plot(pos[skip], np.zeros(int(skip.sum())), "|", color="0.6", markersize=8, label="skipped (no body)")
    for rank, index in enumerate(top_indices):
        if 0 <= index < len(val) and scored[index]:
            axes.plot(pos[index], val[index], "o", color="tab:red", markersize=7)
            text = labels[rank] if labels is not None and rank < len(labels) else str(int(index) + 1)
            axes.annotate(text, (pos[index], val[index]), textcoords="offset points", xytext=(0, 6),
                          ha="center", fontsize=8, color="tab:red")
    if threshold is not None:
        axes.axhline(threshold, linestyle="--", color="tab:orange", linewidth=1.0, label="threshold")
    return _finish_score_axes(figure, axes, title, path)


def _finish_score_axes(figure: Figure, axes, title: str | None, path: str | Path) -> Path:
    """Shared labels, legend and layout of the slice-score plots, then the PNG."""
    axes.set_xlabel("slice position (mm)")
    axes.set_ylabel("anomaly score")
    axes.set_ylim(bottom=0.0)
    if title:
        axes.set_title(title, fontsize=10)
    axes.legend(loc="upper right", fontsize=7, frameon=False)
    figure.tight_layout()
    return _save_png(figure, path)


def _save_png(figure: Figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(Path(path), buffer.getvalue())


def save_methods_plot(path: str | Path, curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
                      title: str | None = None) -> Path:
    """PNG comparing methods on one study: each method's slice score against position (mm).
    Scores of different methods are on their own scales; the plot shows where each peaks."""
    figure = Figure(figsize=(7.0, 3.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, positions, scores in curves:
        pos, val = np.asarray(positions, dtype=np.float64), np.asarray(scores, dtype=np.float64)
        keep = np.isfinite(val)
        axes.plot(pos[keep], val[keep], "-o", markersize=2.5, linewidth=1.2, label=name)
    return _finish_score_axes(figure, axes, title, path)
