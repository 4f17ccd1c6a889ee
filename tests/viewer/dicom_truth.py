"""What our DICOM outputs say, read straight from the files, to hold OHIF's rendering against.

Everything is keyed by the *source slice index* (the position of the referenced CT image in the
scored series, as ``load_study`` orders it), so failure messages name slices, never UIDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
PMAP_CLASS = "1.2.840.10008.5.1.4.1.1.30"
COMPREHENSIVE_3D_SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
#: OHIF's Parametric Map loader multiplies every value by this before display
OHIF_PMAP_SCALE = 100.0


@dataclass(frozen=True)
class SourceSeries:
    """The scored series: slice index of each SOP Instance UID, and the ground-truth lesion slices."""

    slice_of_sop: dict[str, int]
    lesion_slices: frozenset[int]

    @classmethod
    def read(cls, study_dir: Path, truth_nifti: Path) -> SourceSeries:
        from adaptclip_med.io.loader import load_study
        from adaptclip_med.io.nifti import load_nifti

        volume, _ = load_study(study_dir)
        truth = load_nifti(truth_nifti).array
        return cls({s.sop_instance_uid: z for z, s in enumerate(volume.sources)},
                   frozenset(int(z) for z in np.flatnonzero(truth.reshape(truth.shape[0], -1).any(axis=1))))

    def by_slice(self, per_sop: dict[str, object]) -> dict[int, object]:
        """Re-key a browser answer ``{SOP UID: value}`` by slice index (unknown UIDs under -1)."""
        return {self.slice_of_sop.get(uid, -1): value for uid, value in per_sop.items()}


def outputs_by_class(folder: Path) -> dict[str, list[Path]]:
    """Every DICOM file the scorer wrote into ``folder``, grouped by SOP Class UID."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).glob("*.dcm")):
        sop_class = str(pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID)
        found.setdefault(sop_class, []).append(path)
    return found


def _frame_source_uid(frame_item) -> str:
    return str(frame_item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)


def seg_voxels_per_slice(seg_path: Path, source: SourceSeries) -> dict[int, int]:
    """Segmented voxels of each source slice (all segments together), from the SEG's frames and
    each frame's source image reference."""
    seg = pydicom.dcmread(seg_path)
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    counts: dict[int, int] = {}
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        z = source.slice_of_sop[_frame_source_uid(item)]
        counts[z] = counts.get(z, 0) + int(np.count_nonzero(frame))
    return {z: n for z, n in counts.items() if n}


def slice_signature(values: np.ndarray) -> tuple[float, float, float, float]:
    """(sum, max, x centroid, y centroid) of one slice: enough to tell any two of our map's slices
    apart.  The browser probe computes the same four numbers (ohif_probes.PMAP_SLICES)."""
    values = np.asarray(values, dtype=np.float64)
    total = float(values.sum())
    if total <= 0:
        return 0.0, float(values.max(initial=0.0)), 0.0, 0.0
    ys, xs = np.indices(values.shape)
    return total, float(values.max()), float((xs * values).sum() / total), float((ys * values).sum() / total)


def pmap_frames_per_slice(pmap_path: Path, source: SourceSeries) -> dict[int, tuple[float, float, float, float]]:
    """Signature of each Parametric Map frame (real-world values, scaled as OHIF scales them),
    under the source slice that frame references."""
    pmap = pydicom.dcmread(pmap_path)
    pixels = pmap.pixel_array.reshape(int(pmap.NumberOfFrames), int(pmap.Rows), int(pmap.Columns)).astype(np.float64)
    signatures = {}
    for frame, item in zip(pixels, pmap.PerFrameFunctionalGroupsSequence):
        signatures[source.slice_of_sop[_frame_source_uid(item)]] = slice_signature(frame * OHIF_PMAP_SCALE)
    return signatures


def same_signature(a, b, rel: float = 1e-3, px: float = 0.05) -> bool:
    """Sums and maxima equal to ``rel`` (float32 rounding), centroids to ``px`` pixels."""
    close = lambda u, v, tol: abs(u - v) <= tol * max(1.0, abs(u), abs(v))  # noqa: E731
    return close(a[0], b[0], rel) and close(a[1], b[1], rel) and abs(a[2] - b[2]) <= px and abs(a[3] - b[3]) <= px


@dataclass(frozen=True)
class SrRegion:
    """One region of our TID 1500 SR as a viewer should show it: the planar outline (TID 1410) and
    every measurement of the groups sharing its tracking identifier."""

    tracking_identifier: str
    graphic_type: str
    points: tuple[tuple[float, float], ...]
    slice_index: int
    measurements: tuple[tuple[str, float, str], ...]  # (concept meaning, value, UCUM unit)


def sr_regions(sr_path: Path, source: SourceSeries) -> list[SrRegion]:
    """The planar regions of our SR, read back through highdicom (the reader the SR is written for),
    each with the measurements of its volumetric and planar groups."""
    import highdicom as hd

    content = hd.sr.srread(sr_path).content
    measured: dict[str, list[tuple[str, float, str]]] = {}
    for group in [*content.get_volumetric_roi_measurement_groups(), *content.get_planar_roi_measurement_groups()]:
        measured.setdefault(group.tracking_identifier, []).extend(
            (m.name.meaning, float(m.value), str(m.unit.value)) for m in group.get_measurements())
    regions = []
    for group in content.get_planar_roi_measurement_groups():
        roi = group.roi
        image_uid = str(roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        regions.append(SrRegion(group.tracking_identifier, str(roi.graphic_type.value),
                                tuple((float(x), float(y)) for x, y in roi.value), source.slice_of_sop[image_uid],
                                tuple(measured[group.tracking_identifier])))
    return regions
