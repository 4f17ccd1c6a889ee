"""A CT-like synthetic head in Hounsfield units, with lesions of three kinds and a label map.

Made for the demo: the lesion HU values are chosen so that every lesion kind differs from every
normal structure it could be confused with (values from the usual textbook ranges):

==============  =======  ===========================================================
structure       HU       note
==============  =======  ===========================================================
air             -1000
scalp            35      soft tissue
skull           400-1500 diploe to cortical tables
CSF               6      subarachnoid rim, interhemispheric fissure, ventricles
white matter     28
grey matter      38      cortical ribbon
bleed (1)        72      hyperdense, acute haemorrhage-like
infarct (2)      17      hypodense, between CSF (6) and white matter (28)
mass (3)         52      iso- to mildly hyperdense tumour-like, displaces the ventricles
==============  =======  ===========================================================

The anatomy is drawn at twice the in-plane resolution and averaged 2x2 (partial-volume edges),
then noise correlated over about a pixel (sigma 3.5 HU) is added.  Label map values are the
lesion kind (1, 2, 3).  Array convention as :class:`~adaptclip_med.io.volume.Volume`: (Z, Y, X).
SYNTHETIC, NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

HU = {"air": -1000.0, "scalp": 35.0, "csf": 6.0, "white": 28.0, "grey": 38.0}
LESION_HU = {"hyperdense": 72.0, "hypodense": 17.0, "mass": 52.0}
LESION_LABEL = {"hyperdense": 1, "hypodense": 2, "mass": 3}
LESION_KINDS = tuple(LESION_HU)
#: Pixel spacing (mm) and slice thickness/spacing (mm) written to the DICOM headers.
PIXEL_MM = 0.9
SLICE_MM = 5.0
NOISE_HU = 3.5
#: Peak displacement of the anatomy around a mass, in mass radii (mass effect).
MASS_PUSH = 1.6


@dataclass(frozen=True)
class LesionSpec:
    """One lesion: kind, centre (z slice, y and x in [-1, 1] head coordinates) and radii (mm)."""

    kind: str
    centre: tuple[float, float, float]
    radius_mm: tuple[float, float, float]


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], cells: tuple[int, int, int],
                  step: int = 8) -> np.ndarray:
    """Smooth random field in [-1, 1]: cubic upsampling of a coarse grid to 1/``step`` of the
    in-plane size, then repeated (the field varies over tens of pixels, so the repeat is invisible
    and the phantom is made in about a second instead of ten)."""
    z_n, y_n, x_n = shape
    target = (z_n, -(-y_n // step), -(-x_n // step))
    coarse = rng.uniform(-1.0, 1.0, size=cells)
    zoom = [t / c for t, c in zip(target, cells, strict=True)]
    field = ndimage.zoom(coarse, zoom, order=3, mode="nearest")[: target[0], : target[1], : target[2]]
    field = np.repeat(np.repeat(field, step, axis=1), step, axis=2)[:, :y_n, :x_n]
    return np.clip(field, -1.0, 1.0)


def _mass_warp(yy: np.ndarray, xx: np.ndarray, zz: np.ndarray, lesions: Sequence[LesionSpec],
               size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates pulled towards each mass centre, so anatomy drawn on them is pushed away from
    it (mass effect: ventricles and sulci displaced and compressed around the mass)."""
    for lesion in lesions:
        if lesion.kind != "mass":
            continue
        cz, cy, cx = lesion.centre
        radius = lesion.radius_mm[1] / PIXEL_MM * 2.0 / size  # in head coordinates
        dy, dx = yy - np.float32(cy), xx - np.float32(cx)
        dz = (zz - cz) * SLICE_MM / lesion.radius_mm[0]
        distance = np.sqrt(dy**2 + dx**2) + np.float32(1e-6)
        push = (MASS_PUSH * radius * np.exp(-((distance / np.float32(2.5 * radius)) ** 2))
                * np.exp(-(dz**2) / 2.0).astype(np.float32))
        yy = yy - push * dy / distance
        xx = xx - push * dx / distance
    return yy, xx


def _at_field_of_view(field: np.ndarray, fov_scale: float) -> np.ndarray:
    """A smooth field drawn over the head's own [-1, 1] square, read where an array covering
    [-fov_scale, fov_scale] puts its pixels (separable linear interpolation, edges held), so the
    anatomy it shapes is the same whatever the field of view."""
    fine = field.shape[1]
    base = (np.linspace(-1.0, 1.0, fine) * fov_scale + 1.0) * (fine - 1) / 2.0
    base = np.clip(base, 0.0, fine - 1.0)
    low = np.floor(base).astype(int)
    high = np.minimum(low + 1, fine - 1)
    weight = (base - low).astype(np.float32)
    rows = field[:, low, :] * (1 - weight)[None, :, None] + field[:, high, :] * weight[None, :, None]
    return rows[:, :, low] * (1 - weight)[None, None, :] + rows[:, :, high] * weight[None, None, :]


def make_ct_head(seed: int, slices: int = 16, size: int = 256, lesions: Sequence[LesionSpec] = (),
                 fov_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """HU volume (float32, (Z, Y, X)) and label map (uint8: 0 normal, else the lesion kind's label).

    Different seeds give different heads (size, pose, ventricle size, gyri, noise).
    ``fov_scale``: the same head (same anatomy and lesions, in mm) reconstructed over a field of
    view ``fov_scale`` times the default one with the same matrix, i.e. at a pixel size of
    ``fov_scale * PIXEL_MM`` (the physical grid benchmark); 1.0 gives the demo's phantom unchanged."""
    if size % 2 or size < 64 or slices < 1:
        raise ValueError(f"phantom size {size} must be even and >= 64, slices >= 1")
    rng = np.random.default_rng(seed)
    fine = 2 * size
    height = np.linspace(-0.25, 0.7, slices)[:, None, None]
    coords = np.linspace(-1.0, 1.0, fine, dtype=np.float32)
    if fov_scale != 1.0:
        coords = coords * np.float32(fov_scale)
    yy = np.broadcast_to(coords[None, :, None], (slices, fine, fine))
    xx = np.broadcast_to(coords[None, None, :], (slices, fine, fine))
    zz = np.arange(slices, dtype=np.float32)[:, None, None]
    yy, xx = _mass_warp(yy, xx, zz, lesions, fine)
    scale = np.sqrt(np.clip(1.0 - np.where(height > 0, height, 0.5 * height) ** 2, 0.05, 1.0)).astype(np.float32)
    semi_y = 0.88 * (1 + rng.uniform(-0.03, 0.03)) * scale
    semi_x = 0.74 * (1 + rng.uniform(-0.03, 0.03)) * scale
    angle = np.radians(rng.uniform(-3.0, 3.0))
    cy, cx = rng.uniform(-0.015, 0.015, size=2)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (xx - np.float32(cx)) * cos + (yy - np.float32(cy)) * sin
    v = -(xx - np.float32(cx)) * sin + (yy - np.float32(cy)) * cos
    radius = np.sqrt((u / semi_x) ** 2 + (v / semi_y) ** 2)

    hu = np.full(radius.shape, HU["air"], dtype=np.float32)
    hu[radius <= 1.0] = HU["scalp"]
    skull = (radius > 0.88) & (radius <= 0.955)
    tables = np.abs(radius - 0.9175) / 0.0375
    hu[skull] = (400.0 + 1100.0 * tables ** 2)[skull]
    inside = radius <= 0.88
    hu[inside] = HU["csf"]  # subarachnoid space under the inner table
    brain = radius <= 0.86
    gyri = 0.05 * _smooth_field(rng, radius.shape, (max(slices // 3, 2), 12, 12))
    if fov_scale != 1.0:
        gyri = _at_field_of_view(gyri, fov_scale)
    hu[brain] = HU["grey"]
    white = brain & (radius < 0.74 + gyri)
    hu[white] = HU["white"]
    fissure = brain & (np.abs(u) < 0.006) & (np.abs(v) > 0.35)
    hu[fissure] = HU["csf"]
    vent_size = (1.0 + rng.uniform(-0.12, 0.12)) * np.clip(1.0 - ((height - 0.25) / 0.4) ** 2, 0.0, None)
    ventricles = np.zeros(radius.shape, dtype=bool)
    for side in (-1.0, 1.0):
        du = (u - side * 0.11 * semi_x / 0.74) / np.maximum(0.07 * vent_size, 1e-6)
        dv = (v + 0.04) / np.maximum(0.30 * vent_size, 1e-6)
        ventricles |= (du**2 + dv**2 <= 1.0) & (vent_size > 0.05)
    hu[ventricles & brain] = HU["csf"]
    parenchyma = brain & ~ventricles & ~fissure

    labels = np.zeros(radius.shape, dtype=np.uint8)
    zi = np.arange(slices)[:, None, None]
    head = np.linspace(-1.0, 1.0, fine) * fov_scale  # float64 as the label geometry always was
    grid_y, grid_x = head[None, :, None], head[None, None, :]
    for lesion in lesions:
        lz, ly, lx = lesion.centre
        rz, ry, rx = lesion.radius_mm
        blob = (((zi - lz) * SLICE_MM / rz) ** 2 + ((grid_y - ly) * fine / 2 * PIXEL_MM / 2 / ry) ** 2
                + ((grid_x - lx) * fine / 2 * PIXEL_MM / 2 / rx) ** 2) <= 1.0
        region = blob & (brain if lesion.kind == "mass" else parenchyma) & (labels == 0)
        hu[region] = LESION_HU[lesion.kind]
        labels[region] = LESION_LABEL[lesion.kind]

    drift = _smooth_field(rng, radius.shape, (max(slices // 4, 2), 6, 6))
    if fov_scale != 1.0:
        drift = _at_field_of_view(drift, fov_scale)
    hu += 2.0 * drift * brain
    coarse = hu.reshape(slices, size, 2, size, 2).mean(axis=(2, 4))
    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, size=coarse.shape), sigma=(0, 0.7, 0.7))
    coarse += noise * (NOISE_HU / max(float(noise.std()), 1e-6))
    label_coarse = labels.reshape(slices, size, 2, size, 2).max(axis=(2, 4))
    # a voxel is labelled when at least half of its fine sub-voxels are lesion
    share = (labels > 0).reshape(slices, size, 2, size, 2).mean(axis=(2, 4))
    label_coarse[share < 0.5] = 0
    return coarse.astype(np.float32), label_coarse.astype(np.uint8)


def demo_lesions(seed: int, slices: int = 16) -> list[LesionSpec]:
    """One lesion of each kind at seeded places in the parenchyma of the mid slices."""
    rng = np.random.default_rng(seed + 7919)
    mid = slices / 2.0
    # the mass sits beside a lateral ventricle so that its mass effect shows
    places = {"hyperdense": (-0.45, -0.30), "hypodense": (0.42, 0.30), "mass": (-0.02, 0.36)}
    side = 1.0 if rng.random() < 0.5 else -1.0
    specs = []
    for kind in LESION_KINDS:
        py, px = places[kind]
        py += rng.uniform(-0.05, 0.05)
        px = side * (px + rng.uniform(-0.03, 0.03) * np.sign(px))
        low, high = min(3.0, mid), max(slices - 4.0, mid)
        cz = float(np.clip(mid + rng.uniform(-3.0, 3.0), low, high))
        r = {"hyperdense": 8.0, "hypodense": 11.0, "mass": 12.0}[kind] * rng.uniform(0.9, 1.1)
        specs.append(LesionSpec(kind, (cz, float(py), float(px)), (7.5, r, r * rng.uniform(0.8, 1.0))))
    return specs
