"""Per-region overlap (PRO) and its normalised area up to a false-positive-rate limit.

Definition (MVTec AD; anomalib's ``AUPRO`` is the reference implementation):

* ground-truth regions are the connected components of each image's mask, with
  **8-connectivity** (anomalib labels components with ``cv2.connectedComponents``, whose default
  is 8-connectivity; MVTec's own evaluation script uses a full 3x3 structuring element, also 8);
* at a threshold t, the overlap of a region is the fraction of its pixels with map >= t, and
  PRO(t) is the mean overlap over ALL regions of ALL images (each region weighs the same,
  whatever its size);
* FPR(t) is the fraction of ALL ground-truth-negative pixels (normal images included) with
  map >= t;
* AUPRO = area under PRO over FPR from 0 to the limit (0.3; the curve is linearly interpolated
  at the limit), divided by the limit, so a perfect map scores 1.

Streaming trick: giving every positive pixel the weight 1 / (size of its region), the sum of
per-region overlaps at threshold t is just the total weight of positive pixels with map >= t.
So a weighted histogram of map values (plus a histogram of negative pixels and a region count)
carries everything needed, and no map has to be kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from adaptclip_med.evaluation.curves import normalised_area_up_to

EIGHT_CONNECTIVITY = np.ones((3, 3), dtype=bool)
DEFAULT_FPR_LIMIT = 0.3


def region_weights(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """For the positive pixels of a boolean mask (in ``mask[mask]`` order): 1 / size of the
    8-connected region each belongs to; and the number of regions."""
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTIVITY)
    if count == 0:
        return np.zeros(0, dtype=np.float64), 0
    sizes = np.bincount(labels.ravel(), minlength=count + 1).astype(np.float64)
    return 1.0 / sizes[labels[mask]], int(count)


def pro_curve(negatives: np.ndarray, overlap_sums: np.ndarray, n_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) from (0, 0), given per-threshold (highest first) negative-pixel counts and sums
    of region overlap weights."""
    fpr = np.concatenate([[0.0], np.cumsum(negatives)]) / float(np.sum(negatives))
    pro = np.concatenate([[0.0], np.cumsum(overlap_sums)]) / float(n_regions)
    return fpr, pro


def aupro_from_counts(negatives: np.ndarray, overlap_sums: np.ndarray, n_regions: int,
                      fpr_limit: float = DEFAULT_FPR_LIMIT) -> float:
    """Normalised AUPRO (fraction) from per-threshold counts; NaN when there is no region or no
    negative pixel."""
    if n_regions == 0 or float(np.sum(negatives)) == 0.0:
        return float("nan")
    fpr, pro = pro_curve(negatives, overlap_sums, n_regions)
    return normalised_area_up_to(fpr, pro, fpr_limit)


def aupro_exact(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray], fpr_limit: float = DEFAULT_FPR_LIMIT) -> float:
    """Reference AUPRO with one threshold per distinct map value (no binning).

    Keeps every pixel in memory; meant for tests and small sets, not for evaluation runs.
    """
    values, negative_flags, weights = [], [], []
    n_regions = 0
    for anomaly_map, mask in zip(maps, masks, strict=True):
        anomaly_map = np.asarray(anomaly_map, dtype=np.float64)
        mask = np.asarray(mask) > 0.5
        pixel_weights = np.zeros(mask.shape, dtype=np.float64)
        pixel_weights[mask], count = region_weights(mask)
        n_regions += count
        values.append(anomaly_map.ravel())
        negative_flags.append((~mask).ravel().astype(np.float64))
        weights.append(pixel_weights.ravel())
    all_values = np.concatenate(values)
    distinct, inverse = np.unique(all_values, return_inverse=True)
    negatives = np.bincount(inverse, weights=np.concatenate(negative_flags), minlength=distinct.size)[::-1]
    overlap_sums = np.bincount(inverse, weights=np.concatenate(weights), minlength=distinct.size)[::-1]
    return aupro_from_counts(negatives, overlap_sums, n_regions, fpr_limit)
