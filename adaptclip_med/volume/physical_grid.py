"""One physical in-plane grid per reference bank: studies and normal references compared at the same scale.

Few-shot scoring compares each study slice with normal reference slices after both are resized
to the model's square input.  A study reconstructed at another field of view than the bank's
scans would show its anatomy at another scale, and the nearest-neighbour comparison would read
the scale difference as anomaly over the whole slice.  So a bank fixes an in-plane pixel size
(mm) and field of view when it is built (:class:`PhysicalGrid`), and every windowed slice of
every bank scan and every study is resampled to that grid in physical space with SimpleITK
before the method's own preprocessing (:func:`to_grid`); maps come back to the study's native
grid with :func:`to_native`, so every output (NIfTI, SEG, PMAP, overlays) stays in the source
geometry.

The grid shares the study's slice planes and in-plane directions and is centred on the study's
field-of-view centre (scanners reconstruct around the same centre whatever the field of view);
only the pixel size and the number of pixels change, so slice indices, slice positions and
background flags are untouched.  Windowing comes first, so the area outside a smaller study's
field of view is filled with the window's floor (air), never with a grey value.

Resampling: linear for images and maps, nearest neighbour for label maps.  A study whose
in-plane geometry already equals the grid is passed through unchanged (bit-exact).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from adaptclip_med.errors import InputError

log = logging.getLogger(__name__)

#: Relative tolerance under which a study's pixel size counts as the grid's (no resampling).
SAME_SPACING = 1e-4
#: The note said (log, study.json) when a bank predates physical grids.
NO_GRID_NOTE = ("reference bank '{name}' has no physical grid (built before grids existed or with --grid off): studies "
                "are compared at their own pixel size; rebuild it to compare like with like")


@dataclass(frozen=True)
class PhysicalGrid:
    """A square-pixel in-plane grid: ``pixel_mm`` per pixel, ``rows`` x ``cols`` pixels.

    Recorded in a bank's ``bank.json`` (``grid``) and in its identity key."""

    pixel_mm: float
    rows: int
    cols: int

    def __post_init__(self) -> None:
        # rounded once, so the grid read back from bank.json is equal to the one built with
        object.__setattr__(self, "pixel_mm", round(float(self.pixel_mm), 6))
        object.__setattr__(self, "rows", int(self.rows))
        object.__setattr__(self, "cols", int(self.cols))
        if not (np.isfinite(self.pixel_mm) and self.pixel_mm > 0) or self.rows < 1 or self.cols < 1:
            raise InputError(f"physical grid {self.pixel_mm} mm x {self.rows} x {self.cols} is not valid "
                             "(pixel size and size must be positive)")

    @property
    def fov_mm(self) -> tuple[float, float]:
        """Field of view (rows, columns) in mm."""
        return self.rows * self.pixel_mm, self.cols * self.pixel_mm

    def describe(self) -> dict[str, Any]:
        return {"pixel_mm": round(float(self.pixel_mm), 6), "rows": int(self.rows), "cols": int(self.cols),
                "fov_mm": [round(v, 3) for v in self.fov_mm]}

    def text(self) -> str:
        rows_mm, cols_mm = self.fov_mm
        return f"{self.pixel_mm:.4g} mm pixels, {self.rows}x{self.cols} ({rows_mm:.1f}x{cols_mm:.1f} mm)"

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> "PhysicalGrid | None":
        """The grid a ``bank.json`` records (None: the bank has none)."""
        if not record:
            return None
        return cls(float(record["pixel_mm"]), int(record["rows"]), int(record["cols"]))

    @classmethod
    def with_fov(cls, pixel_mm: float, fov_rows_mm: float, fov_cols_mm: float | None = None) -> "PhysicalGrid":
        """The grid covering ``fov_rows_mm`` x ``fov_cols_mm`` at ``pixel_mm`` (rounded to whole pixels)."""
        fov_cols_mm = fov_rows_mm if fov_cols_mm is None else fov_cols_mm
        return cls(float(pixel_mm), max(1, int(round(fov_rows_mm / pixel_mm))), max(1, int(round(fov_cols_mm / pixel_mm))))


# ----------------------------------------------------------------------------- choosing a grid
@dataclass(frozen=True)
class GridChoice:
    """What ``references build --grid`` asked for: 'auto' (from the scans), 'off', or a pixel
    size with an optional field of view."""

    mode: str  # "auto" | "off" | "given"
    pixel_mm: float | None = None
    fov_mm: float | None = None


def parse_grid(text: str | None) -> GridChoice:
    """'auto' (default), 'off', 'PIXEL_MM' (field of view from the scans) or 'PIXEL_MM,FOV_MM'."""
    value = (text or "auto").strip().lower()
    if value in ("auto", "off"):
        return GridChoice(value)
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or any(not np.isfinite(n) or n <= 0 for n in numbers):
        raise InputError(f"grid '{text}' is not 'auto', 'off', 'PIXEL_MM' or 'PIXEL_MM,FOV_MM' (positive numbers, mm)")
    return GridChoice("given", numbers[0], numbers[1] if len(numbers) == 2 else None)


@dataclass(frozen=True)
class InPlaneGeometry:
    """A volume's in-plane pixel size (rows, cols; mm) and size (rows, cols; pixels)."""

    spacing: tuple[float, float]
    shape: tuple[int, int]

    @property
    def pixel_mm(self) -> float:
        return float(np.mean(self.spacing))

    @property
    def fov_mm(self) -> tuple[float, float]:
        return self.shape[0] * self.spacing[0], self.shape[1] * self.spacing[1]


def in_plane_geometry(volume) -> InPlaneGeometry:
    """The canonical slices' in-plane pixel size and size (axes 1 and 2 of ``volume.array``)."""
    _, rows, cols = volume.array.shape
    return InPlaneGeometry((float(volume.spacing[1]), float(volume.spacing[2])), (int(rows), int(cols)))


def has_physical_spacing(volume) -> bool:
    """Whether the volume's pixel size is a real physical size (2-D photographs have none)."""
    return volume.source_kind != "image2d" and "pixel spacing assumed" not in str(volume.meta.get("geometry", ""))


def choose_grid(choice: GridChoice, geometries: Sequence[InPlaneGeometry]) -> PhysicalGrid | None:
    """The bank's grid: the given pixel size (and field of view), else the median pixel size and
    the median field of view of the bank's scans; None for 'off'."""
    if choice.mode == "off":
        return None
    if choice.pixel_mm is not None and choice.fov_mm is not None:
        return PhysicalGrid.with_fov(choice.pixel_mm, choice.fov_mm)
    if not geometries:
        raise InputError("a physical grid needs at least one scan with a physical pixel size")
    pixel = choice.pixel_mm if choice.pixel_mm is not None else float(np.median([g.pixel_mm for g in geometries]))
    rows_mm = float(np.median([g.fov_mm[0] for g in geometries]))
    cols_mm = float(np.median([g.fov_mm[1] for g in geometries]))
    return PhysicalGrid.with_fov(pixel, rows_mm, cols_mm)


# ----------------------------------------------------------------------------- resampling
def _lps(canonical_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, direction 3x3 with unit columns, spacing) of a canonical (z, row, col) RAS affine
    in ITK's LPS frame and (col, row, z) index order."""
    affine = np.asarray(canonical_affine, dtype=np.float64)
    to_lps = np.diag([-1.0, -1.0, 1.0])
    columns = to_lps @ affine[:3, :3][:, [2, 1, 0]]  # ITK index order: (col, row, slice)
    spacing = np.linalg.norm(columns, axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    return to_lps @ affine[:3, 3], columns / spacing, spacing


def _sitk_image(array: np.ndarray, origin: np.ndarray, direction: np.ndarray, spacing: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(v) for v in direction.flatten()])
    return image


@dataclass(frozen=True)
class GridMapping:
    """The study's native in-plane geometry and the grid laid on it (same slices, same directions)."""

    grid: PhysicalGrid
    native_shape: tuple[int, int, int]
    origin: np.ndarray
    direction: np.ndarray
    native_spacing: np.ndarray  # (col, row, slice) mm
    grid_origin: np.ndarray

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return self.native_shape[0], self.grid.rows, self.grid.cols

    @property
    def grid_spacing(self) -> np.ndarray:
        return np.array([self.grid.pixel_mm, self.grid.pixel_mm, self.native_spacing[2]])

    @property
    def identity(self) -> bool:
        """True when the grid is the study's own in-plane grid: no resampling at all."""
        same_pixel = np.allclose(self.native_spacing[:2], self.grid.pixel_mm, rtol=SAME_SPACING, atol=0.0)
        return same_pixel and self.native_shape[1:] == (self.grid.rows, self.grid.cols)

    @property
    def grid_canonical_affine(self) -> np.ndarray:
        """RAS affine of the grid's (z, row, col) voxels, like ``Volume.canonical_affine``."""
        columns = self.direction * self.grid_spacing[None, :]  # LPS, (col, row, slice) order
        to_ras = np.diag([-1.0, -1.0, 1.0])
        affine = np.eye(4)
        affine[:3, :3] = to_ras @ columns[:, [2, 1, 0]]
        affine[:3, 3] = to_ras @ self.grid_origin
        return affine

    def native_image(self, array: np.ndarray) -> sitk.Image:
        return _sitk_image(array, self.origin, self.direction, self.native_spacing)

    def grid_image(self, array: np.ndarray) -> sitk.Image:
        return _sitk_image(array, self.grid_origin, self.direction, self.grid_spacing)


def grid_mapping(volume, grid: PhysicalGrid) -> GridMapping:
    """Lay ``grid`` on the study: the study's direction, its slice planes, centred on the centre
    of its field of view (the origin moves within the slice plane only)."""
    origin, direction, spacing = _lps(volume.canonical_affine)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        # ITK needs orthonormal directions; a sheared affine is laid out in an identity frame,
        # which gives the same in-plane resampling because study and grid share that frame.
        direction = np.eye(3)
    depth, rows, cols = volume.array.shape
    native_centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0, 0.0]) * spacing
    grid_centre = np.array([(grid.cols - 1) / 2.0, (grid.rows - 1) / 2.0, 0.0]) * np.array([grid.pixel_mm, grid.pixel_mm, 0.0])
    grid_origin = origin + direction @ (native_centre - grid_centre)
    return GridMapping(grid, (int(depth), int(rows), int(cols)), origin, direction, spacing, grid_origin)


def _resample(image: sitk.Image, reference: sitk.Image, label: bool, fill: float) -> np.ndarray:
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    out = sitk.Resample(image, reference, sitk.Transform(), interpolator, float(fill), image.GetPixelID())
    return sitk.GetArrayFromImage(out)


def to_grid(mapping: GridMapping, array: np.ndarray, label: bool = False, fill: float = 0.0) -> np.ndarray:
    """A study-shaped (Z, Y, X) array resampled onto the grid (Z, rows, cols): linear for
    images, nearest for label maps; outside the study's field of view: ``fill``."""
    if tuple(array.shape) != mapping.native_shape:
        raise ValueError(f"array {array.shape} does not match the study {mapping.native_shape}")
    if mapping.identity:
        return np.array(array, copy=True)
    source = mapping.native_image(np.asarray(array))
    reference = mapping.grid_image(np.zeros(mapping.grid_shape, dtype=np.uint8))
    return _resample(source, reference, label, fill)


def to_native(mapping: GridMapping, array: np.ndarray, label: bool = False, fill: float = 0.0) -> np.ndarray:
    """A grid-shaped (Z, rows, cols) array (a probability map, a mask) brought back onto the
    study's native grid, exactly aligned in physical space (same planes, same directions)."""
    if tuple(array.shape) != mapping.grid_shape:
        raise ValueError(f"array {array.shape} does not match the grid {mapping.grid_shape}")
    if mapping.identity:
        return np.array(array, copy=True)
    source = mapping.grid_image(np.asarray(array))
    reference = mapping.native_image(np.zeros(mapping.native_shape, dtype=np.uint8))
    return _resample(source, reference, label, fill)


# ----------------------------------------------------------------------------- coverage
@dataclass(frozen=True)
class GridCoverage:
    """How the study's field of view and the bank's grid overlap (both centred on the study's
    field-of-view centre).  For the comparability guard: ``fraction`` of the grid's area inside
    the study's field of view and ``covers`` when that is (nearly) all of it, with a one-line
    ``reason`` otherwise; ``study_inside_fraction`` of the study's area inside the grid (the rest
    is not scored: the maps are 0 there), with ``outside_reason`` when some of it is outside."""

    fraction: float
    rows_fraction: float
    cols_fraction: float
    covers: bool
    reason: str | None
    study_inside_fraction: float = 1.0
    outside_reason: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"fraction": round(self.fraction, 4), "rows_fraction": round(self.rows_fraction, 4),
                "cols_fraction": round(self.cols_fraction, 4), "covers": self.covers, "reason": self.reason,
                "study_inside_fraction": round(self.study_inside_fraction, 4), "outside_reason": self.outside_reason}


#: A study covering at least this share of the grid's extent along both axes counts as covering it.
COVERAGE_TOLERANCE = 0.98


def grid_coverage(volume, grid: PhysicalGrid, tolerance: float = COVERAGE_TOLERANCE) -> GridCoverage:
    """Whether the study's field of view covers the bank's grid.  A study that does not is only
    partly comparable: the uncovered border is air-filled, where the normal references show
    anatomy or the table.  A study larger than the grid is scored inside the grid only."""
    geometry = in_plane_geometry(volume)
    study_rows, study_cols = geometry.fov_mm
    grid_rows, grid_cols = grid.fov_mm
    rows_fraction = min(1.0, study_rows / grid_rows)
    cols_fraction = min(1.0, study_cols / grid_cols)
    fraction = rows_fraction * cols_fraction
    covers = rows_fraction >= tolerance and cols_fraction >= tolerance
    reason = None
    if not covers:
        reason = (f"the study's field of view ({study_rows:.0f}x{study_cols:.0f} mm) covers {fraction:.0%} of the "
                  f"reference bank's ({grid_rows:.0f}x{grid_cols:.0f} mm): the rest is compared as air")
    inside = min(1.0, grid_rows / study_rows) * min(1.0, grid_cols / study_cols)
    outside_reason = None
    if inside < tolerance:
        outside_reason = (f"{1 - inside:.0%} of the study's field of view ({study_rows:.0f}x{study_cols:.0f} mm) lies "
                          f"outside the reference bank's ({grid_rows:.0f}x{grid_cols:.0f} mm) and is not scored")
    return GridCoverage(fraction, rows_fraction, cols_fraction, covers, reason, inside, outside_reason)
