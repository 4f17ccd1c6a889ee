"""Report figures rendered to PNG bytes with matplotlib's Agg canvas.

Figures are built on ``matplotlib.figure.Figure`` directly rather than through pyplot, so no
global backend is switched and nothing leaks between calls (the dashboard may run matplotlib in
the same process).  Bytes are returned so the caller writes them atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adaptclip_med.evaluation.metrics import ImageCurves
from adaptclip_med.evaluation.summary import Stat


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def curves_png(curves: Mapping[str, ImageCurves], kind: str, title: str) -> bytes:
    """Image-level ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves, one line per class."""
    figure = Figure(figsize=(5.5, 5))
    axes = figure.add_subplot()
    for name, curve in curves.items():
        if kind == "roc":
            axes.plot(curve.fpr, curve.tpr, label=name, linewidth=1.2)
        else:
            # only thresholds that gain recall: the step area then equals the average precision
            gains = np.diff(np.concatenate([[0.0], curve.recall])) > 0
            recall, precision = curve.recall[gains], curve.precision[gains]
            axes.step(np.concatenate([[0.0], recall]), np.concatenate([[precision[0]], precision]),
                      where="pre", label=name, linewidth=1.2)
    if kind == "roc":
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
    else:
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.legend(fontsize="small", loc="lower right" if kind == "roc" else "lower left")
    axes.grid(alpha=0.3)
    return _png(figure)


def per_class_bars_png(values: Mapping[int, Mapping[str, Stat]], metric: str) -> bytes:
    """Grouped bars: one group per class, one bar per shot count, error bars = std over seeds."""
    classes = sorted({name for rows in values.values() for name in rows})
    shots = sorted(values)
    width = 0.8 / max(len(shots), 1)
    figure = Figure(figsize=(min(20.0, max(5.0, 1.5 + 0.5 * len(classes) * len(shots))), 4))
    axes = figure.add_subplot()
    positions = np.arange(len(classes))
    for offset, k in enumerate(shots):
        stats = [values[k].get(name) for name in classes]
        heights = [s.mean if s else np.nan for s in stats]
        errors = [s.std if s and s.std is not None else 0.0 for s in stats]
        axes.bar(positions + (offset - (len(shots) - 1) / 2) * width, heights, width, yerr=errors,
                 capsize=2, label=f"{k}-shot")
    axes.set_xticks(positions, classes, rotation=30, ha="right")
    axes.set_ylabel(f"{metric} (%)")
    axes.set_ylim(0, 100)
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)
