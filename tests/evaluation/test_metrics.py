"""Streaming metrics against scikit-learn (exact image level, binned pixel level)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from adaptclip_med.errors import InputError
from adaptclip_med.evaluation.aupro import aupro_exact
from adaptclip_med.evaluation.metrics import ClassMetrics, MetricAccumulator, mean_over_classes


def sklearn_f1max(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    total = precision + recall
    return float(np.max(np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)))


def random_set(seed: int, n: int = 12, size: int = 64):
    """Smooth noise maps in [0, 1] with rectangular defects (kept away from the border so images
    can be stacked without regions touching) that raise the map inside them."""
    rng = np.random.default_rng(seed)
    maps, masks, labels = [], [], []
    for i in range(n):
        mask = np.zeros((size, size), dtype=bool)
        if i % 2:
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(2, size - 12, 2)
                h, w = rng.integers(2, 9, 2)
                mask[y:y + h, x:x + w] = True
        noise = ndimage.gaussian_filter(rng.random((size, size)), 2)
        noise = (noise - noise.min()) / (noise.max() - noise.min())
        maps.append(np.clip(0.6 * noise + 0.4 * mask * rng.random((size, size)), 0.0, 1.0))
        masks.append(mask)
        labels.append(i % 2)
    return maps, masks, labels


def test_image_level_is_exact_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 2)  # rounding creates many ties
    accumulator = MetricAccumulator()
    for score, label in zip(scores, labels):
        accumulator.update(float(score), int(label))
    result = accumulator.compute()
    assert result["I-AUROC"] / 100 == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert result["I-AP"] / 100 == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert result["I-F1max"] / 100 == pytest.approx(sklearn_f1max(labels, scores), abs=1e-9)
    assert not any(name.startswith("P-") for name in result)  # no maps -> no pixel metrics


@pytest.mark.parametrize("seed", range(4))
def test_pixel_level_binned_within_measured_tolerance(seed):
    maps, masks, labels = random_set(seed)
    accumulator = MetricAccumulator()
    for anomaly_map, mask, label in zip(maps, masks, labels):
        accumulator.update(float(anomaly_map.max()), label, anomaly_map, mask)
    result = {k: v / 100 for k, v in accumulator.compute().items()}
    truth = np.concatenate([m.ravel() for m in masks])
    values = np.concatenate([m.ravel() for m in maps])
    # Tolerances: about twice the largest differences measured over seeds 0-9 (see metrics.py).
    assert result["P-AUROC"] == pytest.approx(roc_auc_score(truth, values), abs=1e-5)
    assert result["P-AUPR"] == pytest.approx(average_precision_score(truth, values), abs=5e-4)
    exact_f1 = sklearn_f1max(truth, values)
    assert exact_f1 - 2e-3 <= result["P-F1max"] <= exact_f1 + 1e-12  # binned thresholds are a subset
    assert result["P-AUPRO"] == pytest.approx(aupro_exact(maps, masks), abs=5e-5)


def test_binned_equals_exact_when_values_sit_on_bin_centres():
    """Quantising maps to bin centres removes the only approximation: results must agree to
    rounding error, which pins down the bin arithmetic itself."""
    bins = 1000
    maps, masks, labels = random_set(5)
    maps = [(np.floor(m * bins).clip(0, bins - 1) + 0.5) / bins for m in maps]
    accumulator = MetricAccumulator(bins=bins)
    for anomaly_map, mask, label in zip(maps, masks, labels):
        accumulator.update(0.5, label, anomaly_map, mask)
    result = {k: v / 100 for k, v in accumulator.compute().items()}
    truth = np.concatenate([m.ravel() for m in masks])
    values = np.concatenate([m.ravel() for m in maps])
    assert result["P-AUROC"] == pytest.approx(roc_auc_score(truth, values), abs=1e-12)
    assert result["P-AUPR"] == pytest.approx(average_precision_score(truth, values), abs=1e-12)
    assert result["P-F1max"] == pytest.approx(sklearn_f1max(truth, values), abs=1e-12)
    assert result["P-AUPRO"] == pytest.approx(aupro_exact(maps, masks), abs=1e-12)


def test_streaming_per_image_equals_one_stacked_update():
    maps, masks, labels = random_set(7, n=8)
    streamed = MetricAccumulator()
    for anomaly_map, mask, label in zip(maps, masks, labels):
        streamed.update(float(anomaly_map.max()), label, anomaly_map, mask)
    one_shot = MetricAccumulator()
    one_shot.update(1.0, 1, np.vstack(maps), np.vstack(masks))
    streamed_pixels = {k: v for k, v in streamed.compute().items() if k.startswith("P-")}
    one_shot_pixels = {k: v for k, v in one_shot.compute().items() if k.startswith("P-")}
    assert streamed_pixels.keys() == {"P-AUROC", "P-AUPR", "P-F1max", "P-AUPRO"}
    for name, value in streamed_pixels.items():
        assert one_shot_pixels[name] == pytest.approx(value, abs=1e-10), name


def test_state_does_not_grow_with_maps():
    accumulator = MetricAccumulator(bins=2000)
    sizes = []
    for seed in range(3):
        maps, masks, labels = random_set(seed, n=4)
        for anomaly_map, mask, label in zip(maps, masks, labels):
            accumulator.update(0.5, label, anomaly_map, mask)
        sizes.append(sum(a.nbytes for a in vars(accumulator).values() if isinstance(a, np.ndarray)))
    assert sizes[0] == sizes[-1] == 2000 * 3 * 8


def test_missing_masks():
    accumulator = MetricAccumulator()
    normal = np.full((8, 8), 0.2)
    anomalous = np.full((8, 8), 0.9)
    accumulator.update(0.2, 0, normal, None)  # normal without mask = all-normal ground truth
    accumulator.update(0.9, 1, anomalous, None)  # anomalous without mask = no pixel ground truth
    result = accumulator.compute()
    assert result["I-AUROC"] == 100.0
    assert "P-AUROC" not in result and "P-AUPRO" not in result


def test_only_normal_images_leaves_image_metrics_out():
    accumulator = MetricAccumulator()
    accumulator.update(0.3, 0)
    assert accumulator.compute() == {}
    assert accumulator.image_curves() is None


def test_bad_inputs_raise_one_line_input_errors():
    accumulator = MetricAccumulator()
    with pytest.raises(InputError, match="8x8 but its mask is 4x4"):
        accumulator.update(0.5, 1, np.zeros((8, 8)), np.zeros((4, 4)))
    with pytest.raises(InputError, match="NaN"):
        accumulator.update(0.5, 0, np.full((4, 4), np.nan), None)
    with pytest.raises(InputError, match="label"):
        accumulator.update(0.5, 2)
    with pytest.raises(InputError, match="2-D"):
        accumulator.update(0.5, 0, np.zeros((2, 4, 4)), None)
    assert accumulator.n_images == 0


def test_values_outside_range_are_clipped_not_lost():
    accumulator = MetricAccumulator(bins=100, value_range=(0.0, 1.0))
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    accumulator.update(1.0, 1, np.where(mask, 5.0, -3.0), mask)
    accumulator.update(0.0, 0, np.full((4, 4), -1.0), None)
    result = accumulator.compute()
    assert result["P-AUROC"] == 100.0 and result["P-AUPRO"] == 100.0


def test_torch_tensors_with_channel_dimension_are_accepted():
    torch = pytest.importorskip("torch")
    accumulator = MetricAccumulator()
    mask = torch.zeros(1, 6, 6)
    mask[0, 2:4, 2:4] = 1
    accumulator.update(torch.tensor(0.9), 1, mask * 0.8 + 0.1, mask)
    accumulator.update(0.1, 0, torch.full((1, 6, 6), 0.1), None)
    assert accumulator.compute()["P-AUROC"] == 100.0


def test_image_curves_run_from_origin_to_full_recall():
    accumulator = MetricAccumulator()
    for score, label in [(0.9, 1), (0.8, 0), (0.7, 1), (0.1, 0)]:
        accumulator.update(score, label)
    curves = accumulator.image_curves()
    assert (curves.fpr[0], curves.tpr[0]) == (0.0, 0.0)
    assert (curves.fpr[-1], curves.tpr[-1]) == (1.0, 1.0)
    np.testing.assert_allclose(curves.precision, [1.0, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(curves.recall, [0.5, 0.5, 1.0, 1.0])


def test_class_metrics_mean_is_unweighted_over_classes():
    metrics = ClassMetrics()
    for score, label in [(0.9, 1), (0.1, 0)]:  # class a: perfect
        metrics.update("a", score, label)
    for score, label in [(0.2, 1), (0.8, 0), (0.5, 0), (0.6, 1)]:  # class b: AUROC 0.25
        metrics.update("b", score, label)
    per_class = metrics.compute()
    assert list(per_class) == ["a", "b"]
    assert per_class["b"]["I-AUROC"] == pytest.approx(25.0)
    assert metrics.mean()["I-AUROC"] == pytest.approx(62.5)
    assert set(metrics.image_curves()) == {"a", "b"}


def test_mean_over_classes_skips_classes_without_the_metric():
    mean = mean_over_classes({"brain": {"I-AUROC": 90.0, "P-AUROC": 80.0}, "chest": {"I-AUROC": 70.0}})
    assert mean == {"I-AUROC": 80.0, "P-AUROC": 80.0}
