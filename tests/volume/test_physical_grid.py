"""The physical grid: choosing it, laying studies on it with SimpleITK, and bringing maps back
exactly aligned on the study's native grid."""

from __future__ import annotations

import numpy as np
import pytest

from adaptclip_med.errors import InputError
from adaptclip_med.io.volume import volume_from_source
from adaptclip_med.volume.physical_grid import (
    GridChoice,
    InPlaneGeometry,
    PhysicalGrid,
    choose_grid,
    grid_coverage,
    grid_mapping,
    parse_grid,
    to_grid,
    to_native,
)


def _study(shape=(3, 60, 70), pixel=(0.7, 0.8), slice_mm=5.0, degrees=12.0):
    """An axial study whose in-plane axes are rotated about the slice normal (direction matters)."""
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-pixel[1], -pixel[0], slice_mm])  # source (i=col, j=row, k=slice)
    affine[:3, 3] = (40.0, -12.0, 7.5)
    depth, rows, cols = shape
    source = np.random.default_rng(0).normal(size=(cols, rows, depth)).astype(np.float32)
    return volume_from_source(source, affine, "axial", modality="CT", source_kind="nifti", source_label="study", meta={})


def _physical(affine: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    return (affine @ np.append(zyx, 1.0))[:3]


def test_grid_text_parsing_and_choice():
    assert parse_grid(None) == GridChoice("auto") and parse_grid("off") == GridChoice("off")
    assert parse_grid("0.5") == GridChoice("given", 0.5, None)
    assert parse_grid("0.5,250") == GridChoice("given", 0.5, 250.0)
    for bad in ("big", "0", "-1,200", "1,2,3"):
        with pytest.raises(InputError, match="grid"):
            parse_grid(bad)
    geometries = [InPlaneGeometry((0.8, 0.8), (256, 256)), InPlaneGeometry((1.0, 1.0), (256, 256)),
                  InPlaneGeometry((0.9, 0.9), (300, 280))]
    grid = choose_grid(GridChoice("auto"), geometries)
    # median pixel 0.9 mm; median field of view 256 x 252 mm -> 284 x 280 pixels
    assert (grid.pixel_mm, grid.rows, grid.cols) == (0.9, 284, 280)
    assert choose_grid(GridChoice("given", 0.5, 250.0), []) == PhysicalGrid(0.5, 500, 500)
    assert choose_grid(GridChoice("off"), geometries) is None
    assert PhysicalGrid.from_record(grid.describe()) == grid  # bank.json round trip


def test_the_study_own_grid_is_an_exact_pass_through():
    volume = _study(pixel=(0.75, 0.75))
    mapping = grid_mapping(volume, PhysicalGrid(0.75, 60, 70))
    assert mapping.identity
    np.testing.assert_array_equal(to_grid(mapping, volume.array), volume.array)
    np.testing.assert_array_equal(to_native(mapping, volume.array), volume.array)
    np.testing.assert_allclose(mapping.grid_canonical_affine, volume.canonical_affine, atol=1e-9)


@pytest.mark.parametrize("grid", [PhysicalGrid(1.0, 50, 64), PhysicalGrid(0.5, 110, 90)])
def test_a_map_on_the_grid_comes_back_where_it_lies_in_space(grid):
    """A blob drawn on the grid at a physical point lands on the native grid at that point."""
    volume = _study()
    mapping = grid_mapping(volume, grid)
    target = _physical(volume.canonical_affine, np.array([1.0, 27.0, 38.0]))
    grid_index = np.linalg.solve(mapping.grid_canonical_affine, np.append(target, 1.0))[:3]
    assert grid_index[0] == pytest.approx(1.0, abs=1e-6)  # the grid keeps the study's slice planes
    rows, cols = np.mgrid[0:grid.rows, 0:grid.cols]
    blob = np.exp(-((rows - grid_index[1]) ** 2 + (cols - grid_index[2]) ** 2) * grid.pixel_mm**2 / (2 * 3.0**2))
    on_grid = np.zeros(mapping.grid_shape, dtype=np.float32)
    on_grid[1] = blob
    native = to_native(mapping, on_grid)
    assert native.shape == volume.array.shape and native[0].max() == 0 and native[2].max() == 0
    weights = native[1] / native[1].sum()
    r, c = np.mgrid[0:native.shape[1], 0:native.shape[2]]
    centroid = np.array([1.0, (weights * r).sum(), (weights * c).sum()])
    assert np.linalg.norm(_physical(volume.canonical_affine, centroid) - target) < 0.1  # mm


def test_images_are_linear_and_label_maps_nearest():
    volume = _study()
    mapping = grid_mapping(volume, PhysicalGrid(1.1, 40, 48))
    # a linear function of the physical position survives the trip to the grid (interior)
    z, r, c = np.mgrid[0:3, 0:60, 0:70]
    points = np.stack([z, r, c, np.ones_like(z)], axis=-1) @ volume.canonical_affine.T
    ramp = (0.3 * points[..., 0] - 0.2 * points[..., 1]).astype(np.float32)
    on_grid = to_grid(mapping, ramp, fill=np.nan)
    gz, gr, gc = np.mgrid[0:3, 0:40, 0:48]
    grid_points = np.stack([gz, gr, gc, np.ones_like(gz)], axis=-1) @ mapping.grid_canonical_affine.T
    expected = 0.3 * grid_points[..., 0] - 0.2 * grid_points[..., 1]
    inside = np.isfinite(on_grid)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(on_grid[inside], expected[inside], atol=1e-3)
    labels = (np.arange(3 * 60 * 70).reshape(3, 60, 70) % 3).astype(np.uint8)
    assert set(np.unique(to_grid(mapping, labels, label=True))) <= {0, 1, 2}
    assert to_grid(mapping, labels, label=True).dtype == np.uint8


def test_coverage_says_when_the_study_field_of_view_is_too_small():
    volume = _study(shape=(3, 100, 100), pixel=(1.0, 1.0))
    assert grid_coverage(volume, PhysicalGrid(1.0, 100, 100)).covers
    assert grid_coverage(volume, PhysicalGrid(0.5, 150, 150)).covers  # 75 mm of a 100 mm field of view
    partial = grid_coverage(volume, PhysicalGrid(1.0, 125, 125))
    assert not partial.covers and partial.fraction == pytest.approx(0.64)
    assert "covers 64%" in partial.reason and "\n" not in partial.reason
    assert partial.study_inside_fraction == 1.0 and partial.outside_reason is None
    larger = grid_coverage(volume, PhysicalGrid(1.0, 80, 100))  # the study reaches beyond the grid
    assert larger.covers and larger.study_inside_fraction == pytest.approx(0.8)
    assert "20% of the study's field of view" in larger.outside_reason and "not scored" in larger.outside_reason


def test_single_slice_and_sheared_studies_round_trip():
    """One slice (2-D studies) and a sheared affine (no orthonormal ITK direction) still go to the
    grid and back; a smooth image survives the round trip inside the field of view."""
    affine = np.eye(4)
    affine[:3, :3] = [[-0.7, 0.2, 0.0], [0.0, -0.7, 0.0], [0.0, 0.0, 5.0]]
    cols, rows = np.mgrid[0:40, 0:30]
    smooth = (np.sin(cols / 9.0) + np.cos(rows / 7.0)).astype(np.float32)[..., None]
    volume = volume_from_source(smooth, affine, "axial", modality="CT", source_kind="nifti", source_label="x", meta={})
    mapping = grid_mapping(volume, PhysicalGrid(0.5, 60, 70))
    back = to_native(mapping, to_grid(mapping, volume.array))
    assert back.shape == volume.array.shape == (1, 30, 40)
    np.testing.assert_allclose(back[:, 2:-2, 2:-2], volume.array[:, 2:-2, 2:-2], atol=0.02)
