"""NIfTI reader: the file's voxels plus its affine, reoriented to canonical slices without resampling.

NIfTI carries no modality; unless told, a volume whose values reach air in Hounsfield units
(<= -900) and bone-like highs (>= 300) is taken to be CT, anything else "OT".  4-D files are
reduced to their first volume (``meta['volumes_in_file']`` records how many there were), since a
scan to screen is one 3-D image; the source layout is then that 3-D volume.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from adaptclip_med.errors import InputError
from adaptclip_med.io.file_kinds import require_regular_file
from adaptclip_med.io.geometry import check_axis
from adaptclip_med.io.limits import MAX_DECODED_BYTES
from adaptclip_med.io.volume import Volume, volume_from_source
from adaptclip_med.utils.redact import describe_path

log = logging.getLogger(__name__)


def guess_modality(data: np.ndarray) -> str:
    """'CT' when the values look like Hounsfield units (air and bone present), else 'OT'."""
    low, high = np.percentile(data, [0.1, 99.9])
    return "CT" if low <= -900 and high >= 300 else "OT"



def _check_size(image, path: Path, label: str, first_only: bool) -> None:
    """The header's dimensions x bytes per voxel must fit the file (uncompressed) and a sane cap
    (any file: a gzipped header can claim anything), so a corrupt header is one clear line, not a
    MemoryError after trying to allocate terabytes."""
    shape = tuple(int(n) for n in image.shape)
    if first_only:
        shape = shape[:3]
    voxels = int(np.prod(shape, dtype=object)) if shape else 0
    itemsize = np.dtype(image.get_data_dtype()).itemsize
    needed = voxels * itemsize
    decoded = voxels * 4
    if not path.name.lower().endswith(".gz"):
        offset = int(image.header.get("vox_offset", 0) or 0)
        size = path.stat().st_size
        if size < offset + needed:
            raise InputError(f"{label}: the file is truncated or its header is corrupt (the header claims "
                             f"{'x'.join(map(str, shape))} voxels = {offset + needed} bytes, the file has {size})")
    if decoded > MAX_DECODED_BYTES:
        raise InputError(f"{label}: the NIfTI header claims {'x'.join(map(str, shape))} voxels "
                         f"({decoded / 1024**3:.0f} GiB decoded), more than the {MAX_DECODED_BYTES // 1024**3} GiB limit; "
                         "the header is corrupt or the image too large")


def load_nifti(path: str | Path, axis: str = "axial", modality: str | None = None, label: str | None = None) -> Volume:
    """Read a .nii/.nii.gz file into a :class:`Volume` (see the module docstring for choices).
    ``label`` names the study in messages and progress (default: the path, redacted); batch
    passes the study key, since NIfTI file names often hold patient names."""
    check_axis(axis)
    path = Path(path)
    label = label or describe_path(path)
    if path.exists() or path.is_symlink():
        require_regular_file(path, label)
    try:
        image = nib.load(str(path))
        # A 4-D series is read for its first volume only: decoding all of it (200 fMRI/DWI
        # volumes) would cost 200x the I/O and memory for data that is then dropped.
        first_only = len(image.shape) == 4 and image.shape[3] > 1
        _check_size(image, path, label, first_only)
        data = np.asarray((image.slicer[..., :1] if first_only else image).get_fdata(dtype=np.float32))
    except FileNotFoundError as exc:
        raise InputError(f"{label}: no such file") from exc
    except InputError:
        raise
    except Exception as exc:  # nibabel raises several types for corrupt or truncated files
        raise InputError(f"{label}: not a readable NIfTI file ({type(exc).__name__})") from exc
    volumes = int(image.shape[3]) if first_only else 1
    if first_only:
        log.warning("%s: 4-D NIfTI with %d volumes; using the first", label, volumes)
        data = np.ascontiguousarray(data[..., 0])
    source_shape = tuple(int(n) for n in data.shape)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3) or data.size == 0:
        raise InputError(f"{label}: NIfTI image of shape {tuple(image.shape)} is not a 2-D or 3-D image")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{label}: the image contains NaN or infinite values")
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"{label}: the NIfTI affine is invalid (singular or not finite)")
    guessed = modality is None
    meta = {"volumes_in_file": volumes, "modality_guessed": guessed, "nifti_dtype": str(image.get_data_dtype()),
            "source_shape": list(source_shape)}
    return volume_from_source(data, affine, axis, modality=modality or guess_modality(data), source_kind="nifti",
                              source_label=label, meta=meta, source_shape=source_shape)
