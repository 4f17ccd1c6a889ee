"""Measurement arithmetic: lengths in mm and ellipse ROI statistics against numpy, on a synthetic
slice with anisotropic (and one oblique) spacing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptclip_med.review.measurements import (MeasurementError, distance_mm, ellipse_mask, ellipse_stats, measure,
                                               pixel_area_mm2)


def _affine(sz: float, sy: float, sx: float) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = np.diag([sz, sy, sx])
    aff[:3, 3] = [-10.0, 5.0, 7.0]
    return aff


def test_distance_uses_each_axis_spacing():
    aff = _affine(5.0, 0.5, 2.0)
    assert distance_mm(aff, (0, 0), (10, 0)) == pytest.approx(5.0)       # 10 rows x 0.5 mm
    assert distance_mm(aff, (0, 0), (0, 10)) == pytest.approx(20.0)      # 10 columns x 2 mm
    assert distance_mm(aff, (1, 2), (4, 6)) == pytest.approx(math.hypot(3 * 0.5, 4 * 2.0))


def test_distance_and_area_on_an_oblique_grid():
    c, s = math.cos(0.3), math.sin(0.3)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[3.0, 0, 0], [0, c, -s], [0, s, c]]) @ np.diag([1.0, 0.8, 1.5])
    assert distance_mm(aff, (0, 0), (0, 4)) == pytest.approx(6.0)
    assert pixel_area_mm2(aff) == pytest.approx(0.8 * 1.5)


def test_ellipse_stats_match_numpy_on_an_anisotropic_slice():
    rng = np.random.default_rng(3)
    slice_yx = rng.normal(40.0, 12.0, size=(64, 48))
    aff = _affine(5.0, 0.7, 1.3)
    box = ((10.0, 8.0), (30.0, 40.0))  # centre (20, 24), semi-axes 10 x 16 voxels
    yy, xx = np.mgrid[0:64, 0:48]
    inside = ((yy - 20.0) / 10.0) ** 2 + ((xx - 24.0) / 16.0) ** 2 <= 1.0
    mean, sd, area, pixels = ellipse_stats(slice_yx, aff, box)
    assert np.array_equal(ellipse_mask(slice_yx.shape, box), inside)
    assert pixels == int(inside.sum())
    assert mean == pytest.approx(slice_yx[inside].mean())
    assert sd == pytest.approx(slice_yx[inside].std())
    assert area == pytest.approx(math.pi * 10.0 * 16.0 * 0.7 * 1.3)
    # the analytic area and the pixel count agree to within the staircase
    assert area == pytest.approx(pixels * 0.7 * 1.3, rel=0.05)


def test_measure_recomputes_from_geometry_and_rejects_bad_input():
    volume = np.zeros((4, 20, 20))
    volume[2, 5:15, 5:15] = 100.0
    aff = _affine(5.0, 0.5, 2.0)
    done = measure(volume, aff, [
        {"kind": "distance", "z": 1, "points": [[0, 0], [0, 3]], "length_mm": 999},   # browser value ignored
        {"kind": "ellipse", "z": 2, "points": [[7, 7], [12, 12]]},
    ])
    assert done[0].length_mm == pytest.approx(6.0)
    assert done[1].mean == pytest.approx(100.0) and done[1].sd == pytest.approx(0.0)
    assert done[1].as_dict()["kind"] == "ellipse"
    with pytest.raises(MeasurementError, match="outside the image"):
        measure(volume, aff, [{"kind": "distance", "z": 0, "points": [[0, 0], [0, 30]]}])
    with pytest.raises(MeasurementError, match="kind"):
        measure(volume, aff, [{"kind": "angle", "z": 0, "points": []}])
    with pytest.raises(MeasurementError, match="two points on a slice"):
        measure(volume, aff, [{"kind": "distance", "z": 9, "points": [[0, 0], [1, 1]]}])
