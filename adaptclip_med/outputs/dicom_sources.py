"""Aligning a per-voxel result with the DICOM images it was computed from.

highdicom derives SEG/parametric-map frames from ``source_images``: frame ``i`` of the pixel
array must belong to ``source_images[i]`` (single-frame sources) or to frame ``i + 1`` of the one
multi-frame source.  The volume keeps slices sorted along the normal, so a multi-frame source
whose frames were stored in another order is reordered back here.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from adaptclip_med.errors import InputError
from adaptclip_med.io.volume import Volume


def source_aligned_frames(array_zyx: np.ndarray, volume: Volume, what: str) -> tuple[list[Dataset], np.ndarray]:
    """(source images, array as (frames, rows, columns) in the sources' frame order)."""
    if volume.source_kind != "dicom" or not volume.source_datasets_header:
        raise InputError(f"{volume.source_label}: a DICOM {what} needs a DICOM input "
                         f"(this one is {volume.source_kind})")
    array = np.asarray(array_zyx)
    if array.shape != volume.array.shape:
        raise InputError(f"{volume.source_label}: result of shape {array.shape} does not match the study "
                         f"{volume.array.shape}")
    frames = volume.to_source_array(array)
    headers = list(volume.source_datasets_header)
    frame_numbers = [s.frame_number for s in volume.sources]
    if all(n is None for n in frame_numbers):
        return headers, frames
    if len(headers) != 1:
        raise InputError(f"{volume.source_label}: a DICOM {what} over several multi-frame objects is not supported; "
                         f"write NIfTI instead")
    ordered = np.zeros_like(frames)
    ordered[[int(n) - 1 for n in frame_numbers]] = frames
    return headers, ordered
