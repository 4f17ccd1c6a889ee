"""The reader's measurements as TID 1410 planar ROI groups of the reviewed SR.

A measurement is kept in canonical voxel coordinates (``review/measurements.py``); a PACS viewer
needs it on a source image, in that image's pixel coordinates (column, row; pixel centres at +0.5).
Each slice is mapped to the source image it IS (:func:`slice_images`), each point through
scanner millimetres (canonical affine forward, source affine back), so a flipped or permuted
canonical layout lands on the right pixels.  A distance becomes a POLYLINE of its two ends with
a Length; an ellipse ROI an ELLIPSE (major axis ends, then minor axis ends) with Mean, Standard
Deviation (in HU for CT) and Area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from adaptclip_med.outputs.dicom_sources import ImageRef, slice_images

MM = CodedConcept(value="mm", scheme_designator="UCUM", meaning="millimeter")
MM2 = CodedConcept(value="mm2", scheme_designator="UCUM", meaning="square millimeter")
NO_UNITS = CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")
READER_MEASUREMENT = "reader measurement"


@dataclass(frozen=True)
class PlacedMeasurement:
    """One measurement on its source image: graphic in that image's (column, row) coordinates."""

    number: int
    image: ImageRef
    graphic_type: str  # "POLYLINE" or "ELLIPSE"
    graphic_data: np.ndarray
    values: tuple[tuple[CodedConcept, float, CodedConcept], ...]  # (concept, value, unit)


def _to_source_pixels(volume, canonical_affine: np.ndarray, z: int, points_yx: Sequence[Sequence[float]]) -> np.ndarray:
    """(column, row) pixel coordinates on the source image of canonical slice ``z``."""
    canonical = np.array([[z, y, x, 1.0] for y, x in points_yx], dtype=float).T
    source = np.linalg.inv(np.asarray(volume.source_affine, dtype=float)) @ (np.asarray(canonical_affine, dtype=float) @ canonical)
    rows, columns = source[1], source[2]
    return np.stack([columns + 0.5, rows + 0.5], axis=1)


def _ellipse_axes(points) -> list[tuple[float, float]]:
    (y0, x0), (y1, x1) = points
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, abs(y1 - y0) / 2, abs(x1 - x0) / 2
    return [(cy - ry, cx), (cy + ry, cx), (cy, cx - rx), (cy, cx + rx)]


def place(volume, canonical_affine: np.ndarray, measurements: Sequence[dict[str, Any]],
          modality: str) -> tuple[list[PlacedMeasurement], list[str]]:
    """The kept measurements placed on source images; the second list names (one line each) those
    that could not be (a slice that cuts across source images, a degenerate ROI)."""
    unit = codes.UCUM.HounsfieldUnit if modality == "CT" else NO_UNITS
    images = slice_images(volume, sorted({int(m["z"]) for m in measurements})) if measurements else []
    by_slice = dict(zip(sorted({int(m["z"]) for m in measurements}), images))
    placed, skipped = [], []
    for number, m in enumerate(measurements, start=1):
        image = by_slice.get(int(m["z"]))
        if image is None:
            skipped.append(f"Measurement M{number} not placed: its slice is not one source image")
            continue
        if m["kind"] == "distance" and m.get("length_mm") is not None:
            data = _to_source_pixels(volume, canonical_affine, int(m["z"]), m["points"])
            placed.append(PlacedMeasurement(number, image, "POLYLINE", data, ((codes.SCT.Length, float(m["length_mm"]), MM),)))
        elif m["kind"] == "ellipse" and m.get("mean") is not None and float(m.get("area_mm2") or 0) > 0:
            axes = _to_source_pixels(volume, canonical_affine, int(m["z"]), _ellipse_axes(m["points"]))
            first, second = np.linalg.norm(axes[1] - axes[0]), np.linalg.norm(axes[3] - axes[2])
            data = axes if first >= second else np.vstack([axes[2:], axes[:2]])  # major axis first
            placed.append(PlacedMeasurement(number, image, "ELLIPSE", data, (
                (codes.SCT.Mean, float(m["mean"]), unit), (codes.SCT.StandardDeviation, float(m["sd"]), unit),
                (codes.SCT.Area, float(m["area_mm2"]), MM2))))
        else:
            skipped.append(f"Measurement M{number} not placed: empty or degenerate")
    return placed, skipped


def planar_group(measurement: PlacedMeasurement) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """TID 1410 group of one reader measurement (its own tracking identifier)."""
    image = measurement.image
    region = hd.sr.ImageRegion(graphic_type=getattr(hd.sr.GraphicTypeValues, measurement.graphic_type),
                               graphic_data=np.asarray(measurement.graphic_data, dtype=float),
                               source_image=hd.sr.SourceImageForRegion(image.sop_class_uid, image.sop_instance_uid,
                                                                       image.referenced_frames))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{READER_MEASUREMENT} M{measurement.number}"),
        referenced_region=region,
        measurements=[hd.sr.Measurement(name, value, unit) for name, value, unit in measurement.values])
