"""NIfTI results in the input's own geometry (same voxel layout and affine as the source)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from adaptclip_med.errors import InputError
from adaptclip_med.io.volume import Volume
from adaptclip_med.utils.atomic import atomic_path


def write_nifti(array_zyx: np.ndarray, volume: Volume, path: str | Path, dtype: type | np.dtype = np.float32) -> Path:
    """Write an array shaped like ``volume.array`` (a probability map, a mask) as NIfTI so that it
    overlays the input: voxels go back to the source layout and the source affine is used for both
    qform and sform (code 1, scanner coordinates).  Atomic; the suffix (.nii/.nii.gz) decides
    compression."""
    array = np.asarray(array_zyx)
    if array.shape[:3] != volume.array.shape:
        raise InputError(f"{volume.source_label}: result of shape {array.shape} does not match the study "
                         f"{volume.array.shape}")
    source = volume.to_source_array(array).astype(dtype)
    affine = np.asarray(volume.source_affine, dtype=np.float64)
    image = nib.Nifti1Image(source, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    path = Path(path)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    return path
