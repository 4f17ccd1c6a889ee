"""Threshold-sweep arithmetic shared by the exact image-level and the binned pixel-level metrics.

Both paths reduce to the same thing: for each distinct threshold, from the highest down, how many
positives and negatives score at that value.  Exact image metrics group identical scores (so ties
are handled the way scikit-learn handles them); pixel metrics group by histogram bin (all values in
one bin act as tied).  Every metric below is then a function of those two count vectors, so the two
paths cannot drift apart.

Undefined metrics (no positives or no negatives) come back as NaN; callers decide what to show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankedCounts:
    """Positives and negatives scored at each distinct threshold, highest threshold first."""

    thresholds: np.ndarray  # (T,) descending
    positives: np.ndarray  # (T,) count (or weight) of positives at exactly that threshold
    negatives: np.ndarray  # (T,)

    @property
    def total_positives(self) -> float:
        return float(self.positives.sum())

    @property
    def total_negatives(self) -> float:
        return float(self.negatives.sum())

    @property
    def defined(self) -> bool:
        """ROC/PR metrics need both classes present."""
        return self.total_positives > 0 and self.total_negatives > 0


def rank_scores(scores: np.ndarray, labels: np.ndarray) -> RankedCounts:
    """Exact grouping of per-item scores: one threshold per distinct score value."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    values, inverse = np.unique(scores, return_inverse=True)
    positives = np.bincount(inverse, weights=labels.astype(np.float64), minlength=values.size)
    negatives = np.bincount(inverse, weights=(~labels).astype(np.float64), minlength=values.size)
    return RankedCounts(values[::-1].copy(), positives[::-1].copy(), negatives[::-1].copy())


def rank_histograms(positive_hist: np.ndarray, negative_hist: np.ndarray, lower_edges: np.ndarray) -> RankedCounts:
    """Binned grouping: bin b acts as the threshold "value >= lower edge of b".

    Empty bins are dropped; they would only repeat the previous operating point.
    """
    keep = (positive_hist + negative_hist) > 0
    return RankedCounts(
        np.asarray(lower_edges, dtype=np.float64)[keep][::-1].copy(),
        np.asarray(positive_hist, dtype=np.float64)[keep][::-1].copy(),
        np.asarray(negative_hist, dtype=np.float64)[keep][::-1].copy(),
    )


def roc_points(counts: RankedCounts) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) from (0, 0) to (1, 1), one point per threshold."""
    tps = np.concatenate([[0.0], np.cumsum(counts.positives)])
    fps = np.concatenate([[0.0], np.cumsum(counts.negatives)])
    return fps / counts.total_negatives, tps / counts.total_positives


def pr_points(counts: RankedCounts) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) per threshold, highest threshold first (recall non-decreasing)."""
    tps = np.cumsum(counts.positives)
    predicted = tps + np.cumsum(counts.negatives)
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted > 0)
    return precision, tps / counts.total_positives


def auroc(counts: RankedCounts) -> float:
    """Trapezoidal area under the ROC curve (ties give the diagonal segment, as in scikit-learn)."""
    if not counts.defined:
        return float("nan")
    fpr, tpr = roc_points(counts)
    return float(_trapezoid(tpr, fpr))


def average_precision(counts: RankedCounts) -> float:
    """Step-wise AP = sum over thresholds of (recall gain) x precision (scikit-learn's definition,
    no interpolation)."""
    if not counts.defined:
        return float("nan")
    precision, recall = pr_points(counts)
    gains = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(gains * precision))


def f1_max(counts: RankedCounts) -> float:
    """Best F1 over all thresholds."""
    if not counts.defined:
        return float("nan")
    precision, recall = pr_points(counts)
    total = precision + recall
    f1 = np.divide(2.0 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return float(f1.max())


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoidal rule, spelled out so the result does not depend on the numpy version."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


def normalised_area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Area under a non-decreasing-x curve from x=0 to x=limit, divided by limit.

    The curve is cut at ``limit`` with a linearly interpolated point, so the result does not
    depend on where the last threshold below the limit happens to fall.
    """
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"limit must be in (0, 1], got {limit}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    cut = int(np.searchsorted(x, limit, side="left"))
    if cut >= x.size:
        xs, ys = x, y
    elif x[cut] == limit:
        xs, ys = x[: cut + 1], y[: cut + 1]
    else:
        x0, x1, y0, y1 = x[cut - 1], x[cut], y[cut - 1], y[cut]
        y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        xs = np.concatenate([x[:cut], [limit]])
        ys = np.concatenate([y[:cut], [y_limit]])
    return float(_trapezoid(ys, xs) / limit)
