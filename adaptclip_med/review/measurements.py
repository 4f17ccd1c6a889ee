"""Reader measurements on a slice: distances in mm and elliptical ROIs (mean / SD / area in mm²).

The browser viewer draws the measurements and shows its own numbers while the reader works, but
what is kept with a sign-off is recomputed HERE from the geometry alone (canonical voxel
coordinates ``(z, y, x)`` plus the volume's canonical affine): a value the browser sent is never
trusted, and the numbers in the store and in the SR come from one place.  The affine's columns
carry the spacing AND the direction, so an anisotropic or oblique grid gives the physical length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("distance", "ellipse")
#: At most this many measurements per review (a reader's handful; bounds what the browser may send).
MAX_MEASUREMENTS = 50


class MeasurementError(ValueError):
    """A reported measurement that cannot be kept (malformed, off the volume)."""


@dataclass(frozen=True)
class Measurement:
    """One measurement on axial slice ``z``: ``points`` are two ``(y, x)`` voxel positions (the two
    ends of a distance; two opposite corners of an ellipse's bounding box)."""

    kind: str
    z: int
    points: tuple[tuple[float, float], tuple[float, float]]
    length_mm: float | None = None
    mean: float | None = None
    sd: float | None = None
    area_mm2: float | None = None
    pixels: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "z": self.z, "points": [list(p) for p in self.points], "length_mm": self.length_mm,
                "mean": self.mean, "sd": self.sd, "area_mm2": self.area_mm2, "pixels": self.pixels}


def distance_mm(affine: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]) -> float:
    """Physical length between two in-slice voxel positions ``(y, x)`` under the canonical affine."""
    step = np.asarray(affine, dtype=float)[:3, 1:3] @ np.array([p1[0] - p0[0], p1[1] - p0[1]], dtype=float)
    return float(np.linalg.norm(step))


def pixel_area_mm2(affine: np.ndarray) -> float:
    """Area of one in-slice pixel: the parallelogram spanned by the y and x columns of the affine."""
    a = np.asarray(affine, dtype=float)[:3, :3]
    return float(np.linalg.norm(np.cross(a[:, 1], a[:, 2])))


def ellipse_geometry(points) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre ``(y, x)`` and semi-axes ``(ry, rx)`` (voxels) of the ellipse inscribed in the box."""
    (y0, x0), (y1, x1) = points
    return ((y0 + y1) / 2.0, (x0 + x1) / 2.0), (abs(y1 - y0) / 2.0, abs(x1 - x0) / 2.0)


def ellipse_mask(shape_yx: tuple[int, int], points) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse (boundary included)."""
    (cy, cx), (ry, rx) = ellipse_geometry(points)
    if ry <= 0 or rx <= 0:
        return np.zeros(shape_yx, dtype=bool)
    yy, xx = np.mgrid[0:shape_yx[0], 0:shape_yx[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def ellipse_stats(slice_yx: np.ndarray, affine: np.ndarray, points) -> tuple[float | None, float | None, float, int]:
    """Mean and SD (population, of the pixels inside) and the ellipse's area in mm² (analytic: the
    area a reader drew, not a staircase of pixels); mean/SD are None for an ROI with no pixel."""
    mask = ellipse_mask(slice_yx.shape, points)
    _, (ry, rx) = ellipse_geometry(points)
    area = math.pi * ry * rx * pixel_area_mm2(affine)
    values = np.asarray(slice_yx, dtype=float)[mask]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None, float(area), 0
    return float(values.mean()), float(values.std()), float(area), int(values.size)


def parse(item: Any, shape_zyx: tuple[int, int, int]) -> Measurement:
    """One measurement as the browser reported it (kind, slice, two points), checked against the
    volume; raises :class:`MeasurementError` with a one-line reason."""
    if not isinstance(item, dict) or item.get("kind") not in KINDS:
        raise MeasurementError(f"measurement kind must be one of {', '.join(KINDS)}")
    try:
        z = int(item["z"])
        points = tuple((float(p[0]), float(p[1])) for p in item["points"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise MeasurementError(f"malformed {item.get('kind')} measurement ({type(exc).__name__})") from None
    depth, height, width = shape_zyx
    if len(points) != 2 or not 0 <= z < depth:
        raise MeasurementError(f"{item['kind']} measurement needs two points on a slice of the volume")
    for y, x in points:
        if not (math.isfinite(y) and math.isfinite(x) and -0.5 <= y <= height - 0.5 and -0.5 <= x <= width - 0.5):
            raise MeasurementError(f"{item['kind']} measurement has a point outside the image")
    return Measurement(item["kind"], z, points)  # type: ignore[arg-type]


def measure(volume_zyx: np.ndarray, affine: np.ndarray, items: list[Any]) -> list[Measurement]:
    """The browser's measurements recomputed on the volume (HU for CT: the volume is in the
    modality's units); a malformed one raises :class:`MeasurementError`."""
    if len(items) > MAX_MEASUREMENTS:
        raise MeasurementError(f"at most {MAX_MEASUREMENTS} measurements per review")
    shape = tuple(int(s) for s in np.shape(volume_zyx)[:3])
    done = []
    for item in items:
        m = parse(item, shape)  # type: ignore[arg-type]
        if m.kind == "distance":
            done.append(Measurement(m.kind, m.z, m.points, length_mm=round(distance_mm(affine, *m.points), 3)))
        else:
            mean, sd, area, pixels = ellipse_stats(np.asarray(volume_zyx[m.z]), affine, m.points)
            done.append(Measurement(m.kind, m.z, m.points, mean=None if mean is None else round(mean, 3),
                                    sd=None if sd is None else round(sd, 3), area_mm2=round(area, 3), pixels=pixels))
    return done
