"""Findings: the connected regions of the thresholded anomaly map, the unit a reviewer annotates.

A reviewer thinks in lesions, not voxels; 3-D connected components of the mask are the closest
thing the model offers.  They are ranked by peak probability and capped so that a noisy map at a
low threshold does not produce hundreds of note fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from adaptclip_med.outputs.slice_numbers import instance_of, slice_label, slice_number

MAX_FINDINGS = 8


@dataclass(frozen=True)
class Finding:
    finding_id: int  # 1 = highest peak
    first_slice: int
    last_slice: int
    peak_slice: int
    voxels: int
    volume_ml: float
    peak_probability: float

    def describe(self, instances: Sequence[int | None] | None = None) -> str:
        """One line in the viewer's 1-based slice numbers (the slice fields are 0-based array
        indices), with the DICOM instance number of the peak slice where ``instances`` has one."""
        first, last = slice_number(self.first_slice), slice_number(self.last_slice)
        extent = f"slice {first}" if first == last else f"slices {first}-{last}"
        peak = slice_label(self.peak_slice, instance_of(instances, self.peak_slice))
        return f"#{self.finding_id}: {extent}, peak {self.peak_probability:.2f} on {peak}, {self.volume_ml:.2f} ml"


def find_findings(probability: np.ndarray, threshold: float, spacing_mm: tuple[float, ...],
                  limit: int = MAX_FINDINGS) -> list[Finding]:
    """Connected components (26-connectivity) of ``probability >= threshold`` in a (Z, Y, X) map
    (the voxel volume is the product of the spacings, so their order does not matter)."""
    return labelled_findings(probability, threshold, spacing_mm, limit).findings


@dataclass(frozen=True)
class LabelledFindings:
    """The findings and where they are: ``labels`` holds each listed finding's id on its voxels
    (0 elsewhere, also on regions beyond the cap; uint8 when the ids fit); ``total`` counts every
    region before the cap."""

    findings: list[Finding]
    labels: np.ndarray
    total: int


def labelled_findings(probability: np.ndarray, threshold: float, spacing_mm: tuple[float, ...],
                      limit: int = MAX_FINDINGS) -> LabelledFindings:
    """:func:`find_findings` plus the label map (the DICOM SR outlines and measures each region
    from it, with the same ids and ranking the dashboard shows)."""
    mask = probability >= threshold
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return LabelledFindings([], np.zeros(mask.shape, dtype=np.uint8), 0)
    extents = ndimage.find_objects(labels)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.int64)
    peaks = np.empty(count, dtype=np.float64)
    peak_at = []
    for i, box in enumerate(extents):  # inside each bounding box: scipy's maximum_position sorts the whole map
        values = np.where(labels[box] == i + 1, probability[box], -np.inf)
        at = np.unravel_index(int(np.argmax(values)), values.shape)  # first maximum in raster order, as scipy's
        peaks[i] = float(values[at])
        peak_at.append(tuple(s.start + int(k) for s, k in zip(box, at)))
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    order = np.argsort(-peaks, kind="stable")[:limit]
    findings = [Finding(rank, int(extents[i][0].start), int(extents[i][0].stop - 1), int(peak_at[i][0]), int(sizes[i]),
                        round(float(sizes[i]) * voxel_ml, 3), float(peaks[i]))
                for rank, i in enumerate(order, start=1)]
    small = len(order) < 256  # the listed ids fit one byte: a quarter of the memory on a CT
    relabel = np.zeros(count + 1, dtype=np.uint8 if small else np.int32)
    relabel[order + 1] = np.arange(1, len(order) + 1)
    return LabelledFindings(findings, relabel[labels], int(count))
