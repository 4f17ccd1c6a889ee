"""Reading what a DICOM header says about its images, for classic and enhanced (multi-frame) objects.

Enhanced objects keep geometry and rescale in functional groups (per-frame, falling back to the
shared group) instead of top-level attributes; these helpers hide that difference so the scanner
and the loader can treat every frame alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

#: SOP classes that carry no image to score, by keyword pattern (SR documents, presentation
#: states, key object selections, waveforms, RT objects, raw/encapsulated data, and derived
#: objects such as our own SEG and parametric maps).
_NON_IMAGE = re.compile(
    r"SRStorage|PresentationState|KeyObjectSelection|Waveform|^RT|RawData|Encapsulated|Segmentation"
    r"|Registration|SpatialFiducials|RealWorldValueMapping|Surface|ParametricMap|MediaStorageDirectory|Tractography"
    r"|Measurement|ContentAssessment|Annotation|Report|Protocol|Hanging|Spectroscopy"
)
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


def sop_class_name(ds: Dataset) -> str:
    uid = UID(str(ds.get("SOPClassUID", "")))
    return uid.name if uid.is_valid and uid.name != str(uid) else "unknown SOP class"


def non_image_reason(ds: Dataset) -> str | None:
    """Why this object is not an image we can score, or None if it is one."""
    uid = UID(str(ds.get("SOPClassUID", "")))
    keyword = uid.keyword if uid.is_valid else ""
    if keyword and _NON_IMAGE.search(keyword):
        return f"non-image object ({uid.name})"
    if "Rows" not in ds or "Columns" not in ds:
        return f"non-image object ({sop_class_name(ds)}, no image rows/columns)"
    return None


def image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType", None)
    if value is None:
        value = _shared_or_first(ds, "FrameTypeSequence", "FrameType") or []
    if isinstance(value, str):
        value = value.split("\\")
    return [str(v).strip().upper() for v in value]


def is_localizer(ds: Dataset) -> bool:
    return "LOCALIZER" in image_type(ds)


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _frame_item(ds: Dataset, frame_index: int, sequence: str) -> Dataset | None:
    """The functional-group item ``sequence`` for a frame: per-frame first, then shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame_index < len(per_frame):
        group = per_frame[frame_index]
        if sequence in group and len(group[sequence].value):
            return group[sequence].value[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared is not None and len(shared):
        group = shared[0]
        if sequence in group and len(group[sequence].value):
            return group[sequence].value[0]
    return None


def _shared_or_first(ds: Dataset, sequence: str, attribute: str) -> Any:
    item = _frame_item(ds, 0, sequence)
    return None if item is None else item.get(attribute)


def _floats(value: Any, count: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        items = [value] if isinstance(value, (str, bytes)) else value
        numbers = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return numbers if numbers.size == count and np.all(np.isfinite(numbers)) else None


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _is_absent(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes)) and not value.strip())


def rescale_problem(keyword: str, value: Any) -> str | None:
    """Why a present RescaleSlope/RescaleIntercept value cannot be used ('NaN', 'inf', text), or
    None.  An absent value means the default (slope 1, intercept 0); a present value that is not a
    finite number must not silently become that default: the HU would be invented."""
    if _is_absent(value):
        return None
    if _float_or_none(value) is None:
        return f"{keyword} '{str(value).strip()[:16]}' is not a finite number"
    return None


@dataclass
class FrameHeader:
    """Geometry and value scaling of one 2-D image (a single-frame file or one frame)."""

    path: Path
    header_index: int  # index into the series' header list
    frame_number: int | None  # 1-based, only for multi-frame objects
    rows: int
    columns: int
    position: np.ndarray | None  # ImagePositionPatient (LPS mm)
    orientation: np.ndarray | None  # ImageOrientationPatient (6 cosines)
    pixel_spacing: np.ndarray | None  # (row spacing, column spacing) mm
    slice_thickness: float | None
    spacing_between_slices: float | None
    slope: float
    intercept: float
    instance_number: int | None
    value_problem: str | None = None  # a rescale value present but unusable (the file must be skipped)


def frame_headers(path: Path, header_index: int, ds: Dataset) -> list[FrameHeader]:
    """One :class:`FrameHeader` per frame of ``ds``; enhanced objects read functional groups."""
    frames = number_of_frames(ds)
    multi = frames > 1 or "PerFrameFunctionalGroupsSequence" in ds
    try:
        instance = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        instance = None
    out = []
    for index in range(frames):
        position = _floats(ds.get("ImagePositionPatient"), 3)
        orientation = _floats(ds.get("ImageOrientationPatient"), 6)
        spacing = _floats(ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), 2)
        thickness = _float_or_none(ds.get("SliceThickness"))
        between = _float_or_none(ds.get("SpacingBetweenSlices"))
        slope = _float_or_none(ds.get("RescaleSlope"))
        intercept = _float_or_none(ds.get("RescaleIntercept"))
        problem = rescale_problem("RescaleSlope", ds.get("RescaleSlope")) or \
            rescale_problem("RescaleIntercept", ds.get("RescaleIntercept"))
        if multi:
            plane = _frame_item(ds, index, "PlanePositionSequence")
            if plane is not None:
                position = _floats(plane.get("ImagePositionPatient"), 3)
            orient = _frame_item(ds, index, "PlaneOrientationSequence")
            if orient is not None:
                orientation = _floats(orient.get("ImageOrientationPatient"), 6)
            measures = _frame_item(ds, index, "PixelMeasuresSequence")
            if measures is not None:
                spacing = _floats(measures.get("PixelSpacing"), 2) if measures.get("PixelSpacing") else spacing
                thickness = _float_or_none(measures.get("SliceThickness")) or thickness
                between = _float_or_none(measures.get("SpacingBetweenSlices")) or between
            transform = _frame_item(ds, index, "PixelValueTransformationSequence")
            if transform is not None:
                slope = _float_or_none(transform.get("RescaleSlope"))
                intercept = _float_or_none(transform.get("RescaleIntercept"))
                problem = rescale_problem("RescaleSlope", transform.get("RescaleSlope")) or \
                    rescale_problem("RescaleIntercept", transform.get("RescaleIntercept"))
        out.append(FrameHeader(
            path=path, header_index=header_index, frame_number=index + 1 if multi else None,
            rows=int(ds.Rows), columns=int(ds.Columns), position=position, orientation=orientation,
            pixel_spacing=spacing, slice_thickness=thickness, spacing_between_slices=between,
            slope=1.0 if slope is None or slope == 0 else slope, intercept=0.0 if intercept is None else intercept,
            instance_number=instance, value_problem=problem,
        ))
    return out


def series_frames(files: list[Path], headers: list[Dataset]) -> list[FrameHeader]:
    """Every frame of a series' files, in file order."""
    return [fh for i, (path, ds) in enumerate(zip(files, headers, strict=True)) for fh in frame_headers(path, i, ds)]


def plane_of(orientation: np.ndarray | None) -> str:
    """'axial' | 'coronal' | 'sagittal' from the slice normal's dominant LPS axis; 'oblique' when no
    axis dominates (normal more than ~37 degrees from every axis); 'unknown' without IOP."""
    if orientation is None:
        return "unknown"
    normal = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        return "unknown"
    normal = np.abs(normal / norm)
    major = int(np.argmax(normal))
    if normal[major] < 0.8:
        return "oblique"
    return ("sagittal", "coronal", "axial")[major]
