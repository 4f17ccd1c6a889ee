"""ITK image formats (MetaImage ``.mha``/``.mhd``, NRRD ``.nrrd``/``.nhdr``) read through SimpleITK.

Research pipelines and many segmentation tools hand studies and label maps over in these
formats.  They are read into the same canonical :class:`~adaptclip_med.io.volume.Volume` as
NIfTI: the voxels in the file's index order ``(i, j, k)`` plus a RAS affine built from the
image's spacing, origin and direction (ITK works in LPS; the first two axes flip), so outputs
(NIfTI maps and masks) land in the input's geometry like for any other source.

Like NIfTI, these formats carry no modality: it is guessed from the values unless given.  A
multi-component (vector/RGB) image or one of more than three dimensions is refused with one
line; a ``.mhd`` needs its data file (``ElementDataFile``) beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from adaptclip_med.errors import InputError
from adaptclip_med.io.geometry import check_axis
from adaptclip_med.io.nifti import MAX_DECODED_BYTES, guess_modality
from adaptclip_med.io.volume import Volume, volume_from_source
from adaptclip_med.utils.redact import describe_path

ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
#: ITK's LPS patient frame to the RAS frame every affine of this project uses.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def is_itk_image(path: Path) -> bool:
    return Path(path).name.lower().endswith(ITK_SUFFIXES)


#: Data files a detached header (.mhd, .nhdr) points at.
_DETACHED_DATA_SUFFIXES = (".raw", ".zraw", ".img", ".gz", ".bz2")


def is_detached_itk_data(path: Path) -> bool:
    """The data file of a MetaImage/NRRD header of the same stem beside it: read with its header,
    so folder walks neither list it as a study nor report it as an unreadable file."""
    path = Path(path)
    if not path.name.lower().endswith(_DETACHED_DATA_SUFFIXES):
        return False
    stem = path.name.split(".")[0]
    return any((path.parent / f"{stem}{suffix}").is_file() for suffix in (".mhd", ".nhdr", ".MHD", ".NHDR"))


def itk_affine(spacing: tuple[float, ...], origin: tuple[float, ...], direction: tuple[float, ...]) -> np.ndarray:
    """RAS affine of the ``(i, j, k)`` voxel array of an ITK image (2-D images get a unit third
    axis along the normal of their plane)."""
    dim = len(spacing)
    matrix = np.asarray(direction, dtype=np.float64).reshape(dim, dim) * np.asarray(spacing, dtype=np.float64)[None, :]
    lps = np.eye(4)
    lps[:dim, :dim] = matrix
    lps[:dim, 3] = origin
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ lps[:3, :3]
    affine[:3, 3] = _LPS_TO_RAS @ lps[:3, 3]
    return affine


def _read_information(path: Path, label: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{label}: not a readable {_format_name(path)} file (header unreadable or data file missing)") from exc
    size = tuple(int(n) for n in reader.GetSize())
    if reader.GetNumberOfComponents() != 1:
        raise InputError(f"{label}: {reader.GetNumberOfComponents()}-component (vector/colour) image; "
                         "a scan to screen has one value per voxel")
    if len(size) not in (2, 3) or min(size) < 1:
        raise InputError(f"{label}: image of size {'x'.join(map(str, size))} is not a 2-D or 3-D image")
    decoded = int(np.prod(size, dtype=object)) * 4
    if decoded > MAX_DECODED_BYTES:
        raise InputError(f"{label}: the header claims {'x'.join(map(str, size))} voxels ({decoded / 1024**3:.0f} GiB "
                         f"decoded), more than the {MAX_DECODED_BYTES // 1024**3} GiB limit")
    return reader


def itk_header_geometry(path: Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """(RAS affine, size in (i, j, k) order) from the header alone: listing studies reads no voxels."""
    path = Path(path)
    reader = _read_information(path, describe_path(path))
    return itk_affine(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()), tuple(int(n) for n in reader.GetSize())


def _format_name(path: Path) -> str:
    return "MetaImage" if path.name.lower().endswith((".mha", ".mhd")) else "NRRD"


def load_itk_image(path: str | Path, axis: str = "axial", modality: str | None = None,
                   label: str | None = None) -> Volume:
    """Read a MetaImage or NRRD file into a :class:`Volume` (see the module docstring)."""
    check_axis(axis)
    path = Path(path)
    label = label or describe_path(path)  # batch passes the study key: file names often hold patient names
    if not path.is_file():
        raise InputError(f"{label}: no such file")
    reader = _read_information(path, label)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{label}: the {_format_name(path)} data is truncated, unreadable or its data file is missing") from exc
    data = np.asarray(sitk.GetArrayViewFromImage(image), dtype=np.float32).T.copy()  # (k, j, i) -> (i, j, k)
    if not np.all(np.isfinite(data)):
        raise InputError(f"{label}: the image contains NaN or infinite values")
    affine = itk_affine(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"{label}: the image geometry is invalid (singular or not finite)")
    meta = {"modality_guessed": modality is None, "itk_format": _format_name(path),
            "itk_pixel_type": image.GetPixelIDTypeAsString(), "source_shape": list(data.shape)}
    return volume_from_source(data, affine, axis, modality=modality or guess_modality(data), source_kind="itk",
                              source_label=label, meta=meta, source_shape=tuple(data.shape))
