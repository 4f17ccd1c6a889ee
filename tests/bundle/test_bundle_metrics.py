"""What the evaluation config's metrics count: studies, slices and voxels, with skipped slices."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from adaptclip_med.bundle_support.metrics import AnomalyMetrics, truth_in_study_geometry
from adaptclip_med.errors import InputError
from adaptclip_med.io.volume import Volume


def volume(array) -> Volume:
    array = np.asarray(array, dtype=np.float32)
    return Volume(array=array, spacing=(5.0, 1.0, 1.0), modality="CT", positions=np.arange(array.shape[0]) * 5.0,
                  source_kind="nifti", source_label="synthetic")


def prediction(probability, slice_scores, skipped, score):
    slices = [SimpleNamespace(score=s, skipped=k) for s, k in zip(slice_scores, skipped, strict=True)]
    result = SimpleNamespace(score=score, slices=slices, probability=np.asarray(probability, dtype=np.float32))
    return SimpleNamespace(result=result, volume=volume(np.zeros_like(probability)))


def test_label_must_share_the_study_geometry():
    study = volume(np.zeros((3, 4, 4)))
    assert truth_in_study_geometry(study, None) is None
    assert truth_in_study_geometry(study, volume(np.ones((3, 4, 4)))).all()
    with pytest.raises(InputError, match="does not share the geometry"):
        truth_in_study_geometry(study, volume(np.zeros((2, 4, 4))))


def test_study_slice_and_voxel_metrics_and_skipped_lesion_slices_count_as_misses():
    lesion = np.zeros((3, 4, 4))
    lesion[1, 1:3, 1:3] = 1
    lesion[2, 0, 0] = 1  # a lesion voxel on a slice the scorer skipped
    abnormal_map = lesion.copy() * 0.9
    abnormal_map[2] = 0.0  # skipped slices have an all-zero map
    metric = AnomalyMetrics(bins=100)
    metric.update(([{"label_volume": volume(lesion)}, {}],
                   [prediction(abnormal_map, [0.1, 0.9, float("nan")], [False, False, True], score=0.9),
                    prediction(np.full((3, 4, 4), 0.2), [0.2, 0.3, float("nan")], [False, False, True], score=0.3)]))
    values = metric.compute()
    assert values["study_I-AUROC"] == pytest.approx(100.0)
    # Slices counted: abnormal study 0, 1 and the skipped lesion slice 2 (score 0); normal study 0, 1.
    # Positives {0.9, 0.0} vs negatives {0.1, 0.2, 0.3}: 3 of 6 pairs ranked correctly.
    assert values["slice_I-AUROC"] == pytest.approx(50.0)
    assert 0.0 <= values["slice_P-AUROC"] <= 100.0 and np.isfinite(values["slice_P-AUPRO"])


def test_undefined_metrics_are_nan_not_missing():
    metric = AnomalyMetrics(bins=100)
    metric.update(([{}], [prediction(np.zeros((1, 2, 2)), [0.1], [False], score=0.1)]))
    values = metric.compute()
    assert set(values) >= {"study_I-AUROC", "slice_P-AUROC"} and np.isnan(values["study_I-AUROC"])
