"""One slice numbering for every output a reader follows: the viewer's, 1-based.

The arrays are indexed from 0 (slice ``z`` of the canonical volume), but a radiologist reads
"slice 7 / 16" in the viewer; a signed report, the findings list, the CLI, ``slices.csv`` and the
overlay file names that said "slice 6" for the same image sent the reader one slice off.  Every
human-facing number therefore goes through :func:`slice_number`, and where the slice IS one DICOM
image its InstanceNumber is given beside it (what the PACS viewer shows).  Machine fields keep the
0-based array index under the explicit name ``array_index`` / ``index``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def slice_number(index: int) -> int:
    """The 1-based slice number the viewer shows for canonical array index ``index``."""
    return int(index) + 1


def slice_label(index: int, instance: int | None = None) -> str:
    """"slice 7" or "slice 7 (instance 12)": how every report names canonical slice ``index``."""
    text = f"slice {slice_number(index)}"
    return f"{text} (instance {instance})" if instance is not None else text


def slice_labels(indices: Sequence[int], instances: Sequence[int | None] | None = None) -> str:
    """Several slices, comma-separated, each as :func:`slice_label`."""
    return ", ".join(slice_label(z, instance_of(instances, z)) for z in indices)


def instance_of(instances: Sequence[int | None] | None, index: int) -> int | None:
    if not instances or not 0 <= int(index) < len(instances):
        return None
    return instances[int(index)]


def instance_numbers(volume: Any) -> list[int | None]:
    """The DICOM InstanceNumber of each canonical slice (None where the slice is not exactly one
    single-frame source image: NIfTI input, a multi-frame object, or scored along another axis)."""
    if volume is None:
        return []
    depth = int(volume.array.shape[0])
    headers = getattr(volume, "source_datasets_header", None) or []
    if getattr(volume, "source_kind", "") != "dicom" or not headers:
        return [None] * depth
    # Which canonical slice each source image holds: push the slice indices, on a (Z, 1, 1) array,
    # through the inverse of the exact reorientation (a transpose and flips), costing no volume.
    from nibabel.orientations import apply_orientation

    from adaptclip_med.io.geometry import invert_ornt

    reorientation = getattr(volume, "reorientation", None)
    if reorientation is None:
        return [None] * depth
    marker = np.arange(depth, dtype=np.int64)[:, None, None]
    try:
        frames = np.asarray(apply_orientation(marker, invert_ornt(reorientation.ornt)))
    except (ValueError, TypeError, IndexError):
        return [None] * depth
    if frames.shape != (depth, 1, 1) or depth != len(headers):  # slices cut across source images
        return [None] * depth
    numbers: list[int | None] = [None] * depth
    for frame, header in enumerate(headers):
        low = int(frames[frame, 0, 0])
        value = header.get("InstanceNumber") if hasattr(header, "get") else None
        if value not in (None, ""):
            try:
                numbers[low] = int(value)
            except (TypeError, ValueError):
                pass
    return numbers
