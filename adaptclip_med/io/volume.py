"""The in-memory study: canonical slices for the network plus what is needed to write results back.

Readers build a :class:`Volume` from a source array (the file's voxel layout) and its RAS affine
through :func:`volume_from_source`; the canonical ``array`` is an exact axis permutation/flip of
it (see :mod:`adaptclip_med.io.geometry`), so :meth:`Volume.to_source_array` can undo it and
outputs land in the input's geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.io.geometry import (
    Reorientation,
    obliqueness_degrees,
    plan_reorientation,
    slice_positions,
    spacing_of,
)


@dataclass
class SliceSource:
    """Where one canonical slice came from (DICOM only); used to reference source images in SEG.

    Holds file paths and UIDs, so it is never logged."""

    path: Path | None
    sop_instance_uid: str | None
    frame_number: int | None  # 1-based frame in a multi-frame object, else None


@dataclass
class Volume:
    """A study as float32 (Z, Y, X) slices in display orientation, with its source geometry.

    ``array`` holds physical values (HU for CT after rescale).  ``sources[i]`` and
    ``source_datasets_header[i]`` follow the SOURCE slice order (ascending along the acquisition
    normal), which is the order of ``to_source_array(x)`` for DICOM series.  Volumes built by hand
    (tests, synthetic data) may omit the geometry: it then defaults to the identity layout.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    modality: str
    positions: np.ndarray
    source_kind: str
    source_label: str
    sources: list[SliceSource] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    source_affine: np.ndarray | None = None
    source_datasets_header: list[Any] | None = None
    reorientation: Reorientation | None = None

    def __post_init__(self) -> None:
        self.array = np.ascontiguousarray(self.array, dtype=np.float32)
        self.positions = np.asarray(self.positions, dtype=np.float64)
        if self.reorientation is None:
            self.reorientation = Reorientation.identity(self.array.shape)
        if self.source_affine is None:  # the array is taken to be in the axial canonical layout
            z, y, x = (float(v) for v in self.spacing)
            self.source_affine = np.array([[0.0, 0.0, -x, 0.0], [0.0, -y, 0.0, 0.0], [z, 0.0, 0.0, 0.0],
                                           [0.0, 0.0, 0.0, 1.0]])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def canonical_affine(self) -> np.ndarray:
        """RAS affine of ``array`` (index (z, row, col) -> mm)."""
        assert self.reorientation is not None and self.source_affine is not None
        return self.reorientation.canonical_affine(self.source_affine)

    def to_source_array(self, zyx: np.ndarray) -> np.ndarray:
        """Map an array shaped like ``self.array`` (optionally with trailing channel axes) back to
        the source file's voxel layout; exact inverse of the canonical reorientation."""
        assert self.reorientation is not None
        return self.reorientation.to_source(zyx)


def volume_from_source(source: np.ndarray, source_affine: np.ndarray, axis: str, *, modality: str, source_kind: str,
                       source_label: str, meta: dict[str, Any], source_shape: tuple[int, ...] | None = None,
                       sources: list[SliceSource] | None = None,
                       source_datasets_header: list[Any] | None = None) -> Volume:
    """Reorient a source array (2-D or 3-D, physical values) into a :class:`Volume`.

    ``source_shape`` is the shape :meth:`Volume.to_source_array` must return when it differs from
    ``source.shape`` (e.g. a 2-D image stored as one slice)."""
    shape = tuple(source_shape) if source_shape is not None else tuple(source.shape)
    reorientation = plan_reorientation(source_affine, shape, axis)
    array = reorientation.to_canonical(np.asarray(source, dtype=np.float32))
    affine = reorientation.canonical_affine(source_affine)
    meta = dict(meta)
    meta.setdefault("axis", axis)
    meta["oblique_degrees"] = round(obliqueness_degrees(source_affine), 3)
    return Volume(array=array, spacing=spacing_of(affine), modality=modality,
                  positions=slice_positions(affine, array.shape[0]), source_kind=source_kind,
                  source_label=source_label, sources=list(sources or []), meta=meta,
                  source_affine=np.asarray(source_affine, dtype=np.float64),
                  source_datasets_header=source_datasets_header, reorientation=reorientation)
