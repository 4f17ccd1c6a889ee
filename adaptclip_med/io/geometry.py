"""From a file's voxel layout to the slices a network sees, and back, exactly.

Every reader describes its data as a *source* array (the file's own voxel layout) plus a 4x4 RAS
affine.  The canonical array is obtained by permuting and flipping axes only (nibabel
orientation transforms, no resampling), so the inverse is exact: results written with the source
affine overlay the input in any viewer.

Canonical layouts (axis 0 = slices, axes 1-2 = the displayed image, rows then columns), given as
the anatomical direction each array axis points to:

* axial    ``S, P, L``: slices inferior->superior; row 0 anterior; column 0 patient right
  (the radiological convention: the viewer looks up from the feet).
* coronal  ``A, I, L``: slices posterior->anterior; row 0 superior; column 0 patient right.
* sagittal ``R, I, P``: slices left->right; row 0 superior; column 0 anterior.

Oblique acquisitions are mapped to the closest of these (nibabel ``io_orientation``); the slices
stay the acquired planes and ``meta['oblique']`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from adaptclip_med.errors import InputError

CANONICAL_CODES: dict[str, tuple[str, str, str]] = {
    "axial": ("S", "P", "L"),
    "coronal": ("A", "I", "L"),
    "sagittal": ("R", "I", "P"),
}
AXES = tuple(CANONICAL_CODES)


def check_axis(axis: str) -> str:
    if axis not in CANONICAL_CODES:
        raise InputError(f"slice axis '{axis}' is not one of {', '.join(AXES)}")
    return axis


@dataclass(frozen=True)
class Reorientation:
    """Exact, invertible axis permutation/flip between a source array and the canonical one.

    ``ornt`` is a nibabel orientation array: row ``i`` says to which canonical axis source axis
    ``i`` goes and whether it is flipped."""

    source_shape: tuple[int, ...]
    ornt: np.ndarray

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Reorientation:
        return cls(tuple(int(n) for n in shape), np.array([[0, 1], [1, 1], [2, 1]], dtype=float))

    @property
    def source_shape3d(self) -> tuple[int, int, int]:
        """The source shape as 3-D: 2-D images get a trailing slice axis, trailing 1-sized axes go."""
        shape = tuple(self.source_shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3:
            raise ValueError(f"source shape {self.source_shape} is not 2-D or 3-D")
        return shape  # type: ignore[return-value]

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        shape3 = self.source_shape3d
        return tuple(int(shape3[int(i)]) for i in np.argsort(self.ornt[:, 0]))  # type: ignore[return-value]

    def to_canonical(self, source: np.ndarray) -> np.ndarray:
        data = np.asarray(source).reshape(self.source_shape3d)
        return np.ascontiguousarray(apply_orientation(data, self.ornt))

    def to_source(self, canonical: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_canonical`; trailing axes beyond the first three (e.g. RGB) are kept."""
        data = np.asarray(canonical)
        if tuple(data.shape[:3]) != self.canonical_shape:
            raise ValueError(f"array of shape {data.shape} does not match the volume shape {self.canonical_shape}")
        back = apply_orientation(data, invert_ornt(self.ornt))
        return np.ascontiguousarray(back.reshape(tuple(self.source_shape) + data.shape[3:]))

    def canonical_affine(self, source_affine: np.ndarray) -> np.ndarray:
        """Affine of the canonical array (voxel index (z, row, col) -> RAS mm)."""
        return np.asarray(source_affine, dtype=np.float64) @ inv_ornt_aff(self.ornt, self.source_shape3d)


def invert_ornt(ornt: np.ndarray) -> np.ndarray:
    inverse = np.zeros_like(ornt)
    for i, (axis, flip) in enumerate(ornt):
        inverse[int(axis)] = (i, flip)
    return inverse


def plan_reorientation(source_affine: np.ndarray, source_shape: tuple[int, ...], axis: str) -> Reorientation:
    """The permutation/flip that brings a source array with this affine to the canonical ``axis`` layout."""
    check_axis(axis)
    start = io_orientation(np.asarray(source_affine, dtype=np.float64))
    ornt = ornt_transform(start, axcodes2ornt(CANONICAL_CODES[axis]))
    return Reorientation(tuple(int(n) for n in source_shape), ornt)


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the three array axes of ``affine``."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return float(norms[0]), float(norms[1]), float(norms[2])


def slice_positions(canonical_affine: np.ndarray, n_slices: int) -> np.ndarray:
    """Position (mm) of each slice along the slice axis: the slice origins projected on the axis
    direction, so values increase with the slice index and differences are the true spacing."""
    step = np.asarray(canonical_affine, dtype=np.float64)[:3, 0]
    length = float(np.linalg.norm(step))
    unit = step / length if length > 0 else np.array([0.0, 0.0, 1.0])
    origin = np.asarray(canonical_affine, dtype=np.float64)[:3, 3]
    origins = origin[None, :] + np.arange(n_slices)[:, None] * step[None, :]
    return origins @ unit


def obliqueness_degrees(affine: np.ndarray) -> float:
    """Largest angle (degrees) between an array axis and its closest scanner axis; 0 for
    acquisitions aligned with the patient axes."""
    directions = np.asarray(affine, dtype=np.float64)[:3, :3]
    directions = directions / np.maximum(np.linalg.norm(directions, axis=0, keepdims=True), 1e-12)
    cosines = np.clip(np.abs(directions).max(axis=0), 0.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())
