"""AUPRO: a hand-worked example, the connectivity choice and the FPR-limit interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from adaptclip_med.evaluation.aupro import aupro_exact, region_weights
from adaptclip_med.evaluation.curves import normalised_area_up_to
from adaptclip_med.evaluation.metrics import MetricAccumulator


def two_region_example() -> tuple[np.ndarray, np.ndarray]:
    """6x6 image, 36 pixels: region A = 2 pixels (row 0, cols 0-1) at 0.9; region B = 4 pixels
    (rows 4-5, cols 2-3), top row at 0.8, bottom row at 0.1; of the 30 normal pixels, 3 are at
    0.85 and 27 at 0.

    Thresholds from the top (FPR = normal pixels above / 30; PRO = mean over the 2 regions):
      t=0.90: A 2/2, B 0/4 -> PRO 0.50, FPR 0.0
      t=0.85: 3 normal pixels on   -> PRO 0.50, FPR 0.1
      t=0.80: B 2/4                -> PRO 0.75, FPR 0.1
      t=0.10: B 4/4                -> PRO 1.00, FPR 0.1
      t=0.00: all on               -> PRO 1.00, FPR 1.0
    Area up to FPR 0.3: 0.1 x 0.5 (PRO is 0.5 on [0, 0.1]) + 0.2 x 1.0 (PRO is 1 on [0.1, 0.3],
    interpolating between (0.1, 1) and (1, 1)) = 0.25; divided by 0.3 -> 0.8333...
    """
    anomaly_map = np.zeros((6, 6))
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0:2] = True
    anomaly_map[0, 0:2] = 0.9
    mask[4:6, 2:4] = True
    anomaly_map[4, 2:4] = 0.8
    anomaly_map[5, 2:4] = 0.1
    anomaly_map[1:4, 5] = 0.85
    return anomaly_map, mask


def test_hand_computed_two_region_example():
    anomaly_map, mask = two_region_example()
    assert aupro_exact([anomaly_map], [mask]) == pytest.approx(0.25 / 0.3, abs=1e-12)
    accumulator = MetricAccumulator()
    accumulator.update(0.9, 1, anomaly_map, mask)
    assert accumulator.compute()["P-AUPRO"] == pytest.approx(100 * 0.25 / 0.3, abs=1e-9)


def test_regions_use_eight_connectivity():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1, 1] = mask[2, 2] = True  # diagonal neighbours: one region under 8-connectivity
    mask[4, 4] = True
    weights, count = region_weights(mask)
    assert count == 2
    np.testing.assert_allclose(weights, [0.5, 0.5, 1.0])


def test_each_region_weighs_the_same_whatever_its_size():
    """A found 1-pixel region and a missed 16-pixel region give PRO 0.5 at low FPR, although
    only 1 of 17 anomalous pixels is found (pixel-wise TPR would be ~0.06)."""
    anomaly_map = np.zeros((10, 10))
    mask = np.zeros((10, 10), dtype=bool)
    mask[0, 0] = True
    anomaly_map[0, 0] = 1.0
    mask[5:9, 5:9] = True
    # Curve (0, 0) -> (0, 0.5) -> (1, 1): everything else ties at 0, so PRO rises linearly from
    # 0.5 to 1 over FPR [0, 1]; at FPR 0.3 it is 0.65, and the mean over [0, 0.3] is 0.575.
    assert aupro_exact([anomaly_map], [mask]) == pytest.approx(0.575)


def test_area_is_interpolated_at_the_limit():
    fpr = np.array([0.0, 0.2, 0.4, 1.0])
    pro = np.array([0.0, 0.2, 0.6, 1.0])
    # up to 0.3: triangle 0.5*0.2*0.2 = 0.02, then trapezoid 0.1*(0.2+0.4)/2 = 0.03 -> 0.05 / 0.3
    assert normalised_area_up_to(fpr, pro, 0.3) == pytest.approx(0.05 / 0.3)
    assert normalised_area_up_to(fpr, pro, 0.4) == pytest.approx((0.02 + 0.08) / 0.4)


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_matches_exact_reference_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    accumulator = MetricAccumulator()
    for _ in range(6):
        mask = rng.random((32, 32)) > 0.93  # many small, irregular regions
        anomaly_map = np.clip(rng.random((32, 32)) * 0.7 + 0.3 * mask, 0, 1)
        maps.append(anomaly_map)
        masks.append(mask)
        accumulator.update(float(anomaly_map.max()), int(mask.any()), anomaly_map, mask)
    assert accumulator.compute()["P-AUPRO"] / 100 == pytest.approx(aupro_exact(maps, masks), abs=5e-5)


def test_undefined_without_regions():
    assert np.isnan(aupro_exact([np.zeros((3, 3))], [np.zeros((3, 3), dtype=bool)]))
