"""Frames of a derived multi-frame object in ascending slice position.

highdicom writes the frames of a SEG or Parametric Map sorted along its own normal convention,
which puts an axial series top-down (head first).  OHIF 3.13's Parametric Map loader ignores each
frame's source reference and stacks the frames in file order on the series it shows bottom-up, so
a top-down map lands on the mirror slices.  Reordering the frames to ascending position along the
slice normal (row x column direction cosines, the order cornerstone sorts images in) makes file
order and slice order agree; the per-frame references and positions travel with their frames, so
readers that do use them see the same map.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

_PIXEL_KEYWORDS = ("FloatPixelData", "DoubleFloatPixelData", "PixelData")
_POSITION = Tag("ImagePositionPatient")


def _orientation(dataset: Dataset) -> np.ndarray | None:
    for groups in (dataset.get("SharedFunctionalGroupsSequence", []), dataset.get("PerFrameFunctionalGroupsSequence", [])[:1]):
        for group in groups:
            if "PlaneOrientationSequence" in group:
                return np.asarray(group.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=np.float64)
    return None


def slice_distances(dataset: Dataset) -> np.ndarray | None:
    """Each frame's position along the slice normal (mm), or None without plane positions."""
    orientation = _orientation(dataset)
    groups = dataset.get("PerFrameFunctionalGroupsSequence", [])
    if orientation is None or not groups or not all("PlanePositionSequence" in g for g in groups):
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    return np.array([np.dot(np.asarray(g.PlanePositionSequence[0].ImagePositionPatient, dtype=np.float64), normal)
                     for g in groups])


def order_frames_ascending(dataset: Dataset) -> Dataset:
    """Reorder ``dataset``'s frames (uncompressed pixel data) to ascending slice position, in
    place; the position dimension's index values are renumbered 1..n in the new order.  Objects
    without plane positions or already in order are left as they are."""
    distances = slice_distances(dataset)
    if distances is None:
        return dataset
    order = np.argsort(distances, kind="stable")
    if np.array_equal(order, np.arange(order.size)):
        return dataset
    if int(dataset.BitsAllocated) % 8 or dataset.file_meta.TransferSyntaxUID.is_compressed:
        raise ValueError("frames can be reordered only in uncompressed pixel data of whole bytes")
    frames = int(dataset.NumberOfFrames)
    keyword = next(k for k in _PIXEL_KEYWORDS if k in dataset)
    frame_bytes = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1)) * int(dataset.BitsAllocated) // 8
    data = bytes(getattr(dataset, keyword))
    pixels = np.frombuffer(data[:frames * frame_bytes], dtype=np.uint8).reshape(frames, frame_bytes)
    setattr(dataset, keyword, pixels[order].tobytes() + data[frames * frame_bytes:])
    groups = [dataset.PerFrameFunctionalGroupsSequence[int(i)] for i in order]
    dataset.PerFrameFunctionalGroupsSequence = groups
    pointers = [Tag(item.DimensionIndexPointer) for item in dataset.get("DimensionIndexSequence", [])]
    if _POSITION in pointers:
        axis = pointers.index(_POSITION)
        for number, group in enumerate(groups, start=1):
            content = group.FrameContentSequence[0]
            values = list(content.DimensionIndexValues) if len(pointers) > 1 else [content.DimensionIndexValues]
            values[axis] = number
            content.DimensionIndexValues = values if len(pointers) > 1 else number
    return dataset
