"""Anomaly regions as the DICOM SR reports them: measured in 3-D, outlined on a source image.

The regions are the dashboard's findings (:func:`adaptclip_med.outputs.findings.labelled_findings`:
3-D connected components of ``probability >= threshold``, ranked by peak, same ids), so a region
"#2" in the SR is finding #2 on the review screen.  Each region is then mapped back to the source
images (the map is an exact permutation of the source voxels): its peak voxel names the source
image (and frame) it lies on, and the region's cross-section there is traced as a closed polygon in
that image's pixel coordinates, the POLYLINE that viewers such as OHIF draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import contourpy
import numpy as np
from scipy import ndimage

from adaptclip_med.io.volume import Volume
from adaptclip_med.outputs.dicom_sources import ImageRef, source_aligned_frames, source_image_refs
from adaptclip_med.outputs.findings import MAX_FINDINGS, labelled_findings


@dataclass(frozen=True)
class AnomalyRegion:
    """One connected anomaly region, measured over its voxels."""

    finding_id: int  # 1 = highest peak (the dashboard's finding id)
    voxels: int
    volume_mm3: float
    peak_score: float  # highest anomaly probability in the region
    mean_score: float
    peak_slice: int  # slice index of the peak in the scored volume (study.json / dashboard numbering)
    peak_image: ImageRef  # the source image holding the peak voxel
    outline: np.ndarray  # (N, 2) closed polygon (column, row) in peak_image's pixel coordinates
    outline_area_mm2: float  # area of the outlined cross-section on peak_image

    @property
    def label(self) -> str:
        return f"anomaly region {self.finding_id}"


@dataclass(frozen=True)
class RegionSet:
    """The regions listed (at most ``limit``, highest peaks first) and how many there were."""

    regions: list[AnomalyRegion]
    total: int

    def accepted(self, finding_ids: set[int] | list[int]) -> "RegionSet":
        """Only the regions whose finding id is in ``finding_ids`` (e.g. those a reader accepted)."""
        wanted = {int(i) for i in finding_ids}
        return RegionSet([r for r in self.regions if r.finding_id in wanted], self.total)


def outline_polygon(mask2d: np.ndarray, pixel: tuple[int, int]) -> np.ndarray:
    """The outer boundary of the 8-connected piece of ``mask2d`` that contains ``pixel`` (row,
    column), as a closed (N, 2) polygon of (column, row) DICOM pixel coordinates (the centre of
    the top-left pixel is 0.5, 0.5).  Traced by marching squares through pixel centres."""
    pieces, _ = ndimage.label(mask2d, structure=np.ones((3, 3), dtype=bool))
    piece = np.pad(pieces == pieces[pixel], 1).astype(np.float64)
    lines = contourpy.contour_generator(z=piece, line_type=contourpy.LineType.Separate).lines(0.5)

    def enclosed(line: np.ndarray) -> float:
        x, y = line[:, 0], line[:, 1]
        return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2.0

    outer = np.asarray(max(lines, key=enclosed), dtype=np.float64)
    if not np.array_equal(outer[0], outer[-1]):
        outer = np.vstack([outer, outer[:1]])
    return outer - 1.0 + 0.5  # undo the padding; index -> DICOM pixel coordinate


def in_plane_spacing(volume: Volume) -> tuple[float, float]:
    """(row spacing, column spacing) in mm of the source images (the source layout is slice,
    row, column; the affine's columns are the steps along each)."""
    affine = np.asarray(volume.source_affine, dtype=np.float64)
    return float(np.linalg.norm(affine[:3, 1])), float(np.linalg.norm(affine[:3, 2]))


def anomaly_regions(probability: np.ndarray, threshold: float, volume: Volume, limit: int = MAX_FINDINGS) -> RegionSet:
    """The regions of ``probability >= threshold`` (a map shaped like ``volume.array``, DICOM
    input) with their measurements and outlines."""
    probability = np.asarray(probability, dtype=np.float32)
    found = labelled_findings(probability, threshold, volume.spacing, limit)
    if not found.findings:
        return RegionSet([], found.total)
    headers, labels_src = source_aligned_frames(found.labels, volume, "SR")
    _, prob_src = source_aligned_frames(probability, volume, "SR")
    images = source_image_refs(headers, labels_src.shape[0])
    voxel_mm3 = float(np.prod(volume.spacing))
    row_mm, col_mm = in_plane_spacing(volume)
    boxes = ndimage.find_objects(labels_src)  # work inside each region's bounding box
    regions = []
    for finding in found.findings:
        box = boxes[finding.finding_id - 1]
        inside = labels_src[box] == finding.finding_id
        local = prob_src[box]
        values = local[inside]
        peak_local = np.unravel_index(int(np.argmax(np.where(inside, local, -np.inf))), local.shape)
        frame = box[0].start + int(peak_local[0])
        pixel = (box[1].start + int(peak_local[1]), box[2].start + int(peak_local[2]))
        section = labels_src[frame] == finding.finding_id
        piece, _ = ndimage.label(section, structure=np.ones((3, 3), dtype=bool))
        regions.append(AnomalyRegion(
            finding_id=finding.finding_id, voxels=finding.voxels, volume_mm3=round(finding.voxels * voxel_mm3, 3),
            peak_score=float(values.max()), mean_score=float(values.mean()), peak_slice=finding.peak_slice,
            peak_image=images[frame], outline=outline_polygon(section, pixel),
            outline_area_mm2=round(float((piece == piece[pixel]).sum()) * row_mm * col_mm, 3)))
    return RegionSet(regions, found.total)


def map_peak(probability: np.ndarray, volume: Volume) -> tuple[ImageRef, tuple[float, float]]:
    """The source image and (column, row) pixel centre of the anomaly map's highest value."""
    headers, frames = source_aligned_frames(np.asarray(probability, dtype=np.float32), volume, "SR")
    images = source_image_refs(headers, frames.shape[0])
    frame, row, column = np.unravel_index(int(np.argmax(frames)), frames.shape)
    return images[int(frame)], (float(column) + 0.5, float(row) + 0.5)
