"""Streaming anomaly-detection metrics: feed one image at a time, compute once at the end.

Image level (exact): I-AUROC, I-AP, I-F1max from one float per image.

Pixel level (binned approximation): P-AUROC, P-AUPR (pixel AP), P-F1max and P-AUPRO come from
fixed-bin histograms of anomaly-map values over a declared range (default [0, 1], values
outside are clipped into the end bins).  With the default 10,000 equal-width bins memory stays at
a few hundred kilobytes however many 518x518 maps go through, unlike the authors' evaluation,
which keeps every map until the end.  All values inside one bin count
as tied, so results differ slightly from exact computation.  Measured against scikit-learn on ten
random sets of twelve 64x64 maps in [0, 1] (tests/evaluation/test_metrics.py keeps this check), the
largest absolute differences were 4e-6 (P-AUROC), 2e-4 (P-AUPR), 8e-4 (P-F1max; binned F1max can
only be lower, its thresholds being a subset of the exact ones) and 2e-5 (P-AUPRO), i.e. at most
0.08 percentage points.  Maps whose values crowd into a small part of the declared range lose
resolution: declare a tighter range.

P-AUPRO (see :mod:`adaptclip_med.evaluation.aupro`) uses the same bins as its 10,000 thresholds.

:meth:`MetricAccumulator.compute` returns percentages and leaves out metrics that are undefined
for the data seen (no anomalous image, no pixel ground truth...), so a report never shows a
made-up number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adaptclip_med.errors import InputError
from adaptclip_med.evaluation.aupro import DEFAULT_FPR_LIMIT, aupro_from_counts, region_weights
from adaptclip_med.evaluation.curves import (
    RankedCounts,
    auroc,
    average_precision,
    f1_max,
    pr_points,
    rank_histograms,
    rank_scores,
    roc_points,
)

log = logging.getLogger(__name__)

DEFAULT_BINS = 10_000
DEFAULT_VALUE_RANGE = (0.0, 1.0)
IMAGE_METRICS = ("I-AUROC", "I-AP", "I-F1max")
PIXEL_METRICS = ("P-AUROC", "P-AUPR", "P-F1max", "P-AUPRO")
METRIC_NAMES = IMAGE_METRICS + PIXEL_METRICS


@dataclass(frozen=True)
class ImageCurves:
    """Image-level ROC and PR operating points, for plotting."""

    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def _to_numpy(array) -> np.ndarray:
    """Accept numpy arrays and (CPU or GPU) torch tensors without importing torch here."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _as_2d(array, what: str) -> np.ndarray:
    array = np.squeeze(_to_numpy(array))
    if array.ndim != 2:
        raise InputError(f"{what}: expected a 2-D map, got shape {tuple(array.shape)}")
    return array


class MetricAccumulator:
    """Accumulates image scores exactly and pixel statistics in fixed histograms.

    ``update`` semantics for pixel statistics:

    * ``anomaly_map`` None: the image counts for image-level metrics only;
    * ``mask`` None with label 0: the ground truth is all normal (normal test images usually
      ship no mask);
    * ``mask`` None with label 1: no pixel ground truth exists (image-level-only sets), so the
      map is not used for pixel metrics.
    """

    def __init__(self, bins: int = DEFAULT_BINS, value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
                 fpr_limit: float = DEFAULT_FPR_LIMIT) -> None:
        low, high = float(value_range[0]), float(value_range[1])
        if not high > low:
            raise ValueError(f"value_range must be increasing, got {value_range}")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.bins = int(bins)
        self.value_range = (low, high)
        self.fpr_limit = float(fpr_limit)
        self._scores: list[float] = []
        self._labels: list[int] = []
        self._positive_hist = np.zeros(self.bins, dtype=np.int64)
        self._negative_hist = np.zeros(self.bins, dtype=np.int64)
        self._overlap_hist = np.zeros(self.bins, dtype=np.float64)
        self._n_regions = 0
        self._warned_clipping = False

    @property
    def n_images(self) -> int:
        return len(self._scores)

    def bin_lower_edges(self) -> np.ndarray:
        low, high = self.value_range
        return low + (high - low) * np.arange(self.bins, dtype=np.float64) / self.bins

    def update(self, image_score: float, label: int, anomaly_map=None, mask=None) -> None:
        """Add one image.  ``anomaly_map`` and ``mask`` are 2-D of the same shape (a leading
        singleton channel is tolerated); masks are binarised at 0.5 (0/1 and 0/255 both work)."""
        score = float(image_score)
        if not np.isfinite(score):
            raise InputError(f"image score {score} is not finite")
        if label not in (0, 1):
            raise InputError(f"label must be 0 or 1, got {label!r}")
        if anomaly_map is not None:
            self._update_pixels(int(label), anomaly_map, mask)
        self._scores.append(score)
        self._labels.append(int(label))

    def _update_pixels(self, label: int, anomaly_map, mask) -> None:
        values = _as_2d(anomaly_map, "anomaly map").astype(np.float64, copy=False)
        if not np.all(np.isfinite(values)):
            raise InputError("anomaly map contains NaN or infinite values")
        if mask is None:
            if label == 1:
                return
            truth = np.zeros(values.shape, dtype=bool)
        else:
            truth = _as_2d(mask, "mask") > 0.5
            if truth.shape != values.shape:
                raise InputError(f"anomaly map is {values.shape[0]}x{values.shape[1]} but its mask is "
                                 f"{truth.shape[0]}x{truth.shape[1]}; resize one to the other first")
        index = self._bin_index(values)
        positive_index = index[truth]
        self._positive_hist += np.bincount(positive_index, minlength=self.bins)
        self._negative_hist += np.bincount(index[~truth], minlength=self.bins)
        weights, count = region_weights(truth)
        if count:
            self._overlap_hist += np.bincount(positive_index, weights=weights, minlength=self.bins)
            self._n_regions += count

    def _bin_index(self, values: np.ndarray) -> np.ndarray:
        low, high = self.value_range
        if not self._warned_clipping and (values.min() < low or values.max() > high):
            log.warning("anomaly map values outside the declared range [%g, %g] are clipped into the end bins", low, high)
            self._warned_clipping = True
        scaled = (np.clip(values, low, high) - low) * (self.bins / (high - low))
        return np.minimum(scaled.astype(np.int64), self.bins - 1)

    def _image_counts(self) -> RankedCounts:
        return rank_scores(np.asarray(self._scores), np.asarray(self._labels))

    def _pixel_counts(self) -> RankedCounts:
        return rank_histograms(self._positive_hist, self._negative_hist, self.bin_lower_edges())

    def compute(self) -> dict[str, float]:
        """Metrics in percent; undefined ones are left out."""
        image = self._image_counts()
        pixel = self._pixel_counts()
        aupro_fraction = aupro_from_counts(self._negative_hist[::-1], self._overlap_hist[::-1],
                                           self._n_regions, self.fpr_limit)
        values = {
            "I-AUROC": auroc(image),
            "I-AP": average_precision(image),
            "I-F1max": f1_max(image),
            "P-AUROC": auroc(pixel),
            "P-AUPR": average_precision(pixel),
            "P-F1max": f1_max(pixel),
            "P-AUPRO": aupro_fraction,
        }
        return {name: 100.0 * value for name, value in values.items() if np.isfinite(value)}

    def image_curves(self) -> ImageCurves | None:
        """Exact image-level ROC and PR points; None until both normal and anomalous images were seen."""
        counts = self._image_counts()
        if not counts.defined:
            return None
        fpr, tpr = roc_points(counts)
        precision, recall = pr_points(counts)
        return ImageCurves(fpr=fpr, tpr=tpr, precision=precision, recall=recall)


def mean_over_classes(per_class: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric over the classes where it is defined (the benchmark
    convention: every class counts the same, however many images it has)."""
    means: dict[str, float] = {}
    for name in METRIC_NAMES:
        present = [metrics[name] for metrics in per_class.values() if name in metrics]
        if present:
            means[name] = float(np.mean(present))
    return means


class ClassMetrics:
    """One :class:`MetricAccumulator` per class, created on first use with shared options."""

    def __init__(self, bins: int = DEFAULT_BINS, value_range: tuple[float, float] = DEFAULT_VALUE_RANGE,
                 fpr_limit: float = DEFAULT_FPR_LIMIT) -> None:
        self._options = {"bins": bins, "value_range": value_range, "fpr_limit": fpr_limit}
        self._accumulators: dict[str, MetricAccumulator] = {}

    def accumulator(self, class_name: str) -> MetricAccumulator:
        if class_name not in self._accumulators:
            self._accumulators[class_name] = MetricAccumulator(**self._options)
        return self._accumulators[class_name]

    def update(self, class_name: str, image_score: float, label: int, anomaly_map=None, mask=None) -> None:
        self.accumulator(class_name).update(image_score, label, anomaly_map, mask)

    def compute(self) -> dict[str, dict[str, float]]:
        """Per-class metrics (percent), classes in sorted order."""
        return {name: self._accumulators[name].compute() for name in sorted(self._accumulators)}

    def mean(self) -> dict[str, float]:
        return mean_over_classes(self.compute())

    def image_curves(self) -> dict[str, ImageCurves]:
        """Per-class image ROC/PR points, for classes where they are defined."""
        curves = {name: self._accumulators[name].image_curves() for name in sorted(self._accumulators)}
        return {name: curve for name, curve in curves.items() if curve is not None}
