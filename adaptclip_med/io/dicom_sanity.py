"""Header checks that decide, before any pixel is decoded, whether a DICOM image file can be used.

The scanner runs :func:`header_problem` on every image header; a file it refuses is skipped with
the returned one-line reason (reported per file, the batch goes on) instead of hanging discovery
(a frame count no file could hold), allocating terabytes (30000x65535x65535 pixels) or ending in
a traceback (zero direction cosines, zero pixel spacing, a 'NaN' rescale slope).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from adaptclip_med.io.dicom_headers import FrameHeader, frame_headers, number_of_frames
from adaptclip_med.io.limits import decoded_size_problem

#: Every encapsulated frame needs at least one item header (tag + length) in the file.
_ITEM_HEADER_BYTES = 8
#: DEFLATE cannot compress better than about 1032:1.
_MAX_DEFLATE_RATIO = 1100
_COSINE_TOLERANCE = 0.05


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


def size_problem(ds: Dataset, file_size: int) -> str | None:
    """Why the image size claimed by the header cannot be right or must not be decoded, or None."""
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if rows <= 0 or columns <= 0:
        return f"the header claims an empty image ({rows}x{columns} pixels)"
    frames = number_of_frames(ds)
    samples = max(_int(ds, "SamplesPerPixel", 1), 1)
    problem = decoded_size_problem((frames, rows, columns), "pixels", itemsize=4 * samples)
    if problem is not None:
        return problem
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return None
    if syntax.is_deflated:
        raw = frames * rows * columns * samples * max(_int(ds, "BitsAllocated", 16), 1) // 8
        if raw > file_size * _MAX_DEFLATE_RATIO:
            return f"the header claims {frames} frame(s) of {rows}x{columns} but the file ({file_size} bytes) cannot hold them"
    elif syntax.is_compressed and frames * _ITEM_HEADER_BYTES > file_size:
        return f"the header claims {frames} frames but the file ({file_size} bytes) cannot hold them"
    return None


def _cosines_problem(orientation: np.ndarray) -> str | None:
    row, column = orientation[:3], orientation[3:]
    unit = abs(np.linalg.norm(row) - 1) <= _COSINE_TOLERANCE and abs(np.linalg.norm(column) - 1) <= _COSINE_TOLERANCE
    if unit and abs(float(np.dot(row, column))) <= _COSINE_TOLERANCE:
        return None
    shown = "\\".join(f"{v:g}" for v in orientation)
    return f"ImageOrientationPatient {shown} is not two perpendicular unit vectors"


def frame_problem(frame: FrameHeader) -> str | None:
    """Why one frame's geometry or value scaling cannot be used, or None."""
    if frame.value_problem is not None:
        return frame.value_problem
    if frame.orientation is not None:
        problem = _cosines_problem(frame.orientation)
        if problem is not None:
            return problem
    if frame.pixel_spacing is not None and np.any(frame.pixel_spacing <= 0):
        shown = "\\".join(f"{v:g}" for v in frame.pixel_spacing)
        return f"PixelSpacing {shown} is not positive"
    return None


def header_problem(path: Path, ds: Dataset, file_size: int) -> str | None:
    """Why this image file must be skipped (size claim, geometry, rescale values), or None.

    The size is checked first, so per-frame values are only read for a frame count that is real."""
    problem = size_problem(ds, file_size)
    if problem is not None:
        return problem
    for frame in frame_headers(path, 0, ds):
        problem = frame_problem(frame)
        if problem is not None:
            return problem if frame.frame_number is None else f"frame {frame.frame_number}: {problem}"
    return None
