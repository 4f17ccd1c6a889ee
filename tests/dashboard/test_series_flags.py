"""Label maps and series with findings are flagged before anyone takes them for a normal scan."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from adaptclip_med.review.discovery import discover, finding_reason, label_map_reason
from adaptclip_med.review.paths import AllowedRoots


def _nifti(path, data) -> None:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


def _candidate(root, name):
    return next(c for c in discover(AllowedRoots([root])).candidates if c.paths[0].name == name)


def test_integer_volume_with_few_values_is_a_label_map(tmp_path):
    labels = np.zeros((24, 24, 8), dtype=np.uint8)
    labels[4:10, 4:10, 2:5] = 1
    labels[12:16, 12:16, 3:6] = 2
    _nifti(tmp_path / "case07.nii.gz", labels)
    reason = label_map_reason(_candidate(tmp_path, "case07.nii.gz"))
    assert reason.startswith("label map") and "3 distinct integer values" in reason


def test_a_name_saying_mask_flags_a_float_volume(tmp_path):
    rng = np.random.default_rng(0)
    _nifti(tmp_path / "brain_seg.nii.gz", rng.normal(size=(16, 16, 6)).astype(np.float32))
    assert "file name says" in label_map_reason(_candidate(tmp_path, "brain_seg.nii.gz"))


def test_an_image_volume_is_not_flagged(tmp_path):
    rng = np.random.default_rng(1)
    _nifti(tmp_path / "head_ct.nii.gz", rng.integers(-1000, 2000, size=(16, 16, 6)).astype(np.int16))
    candidate = _candidate(tmp_path, "head_ct.nii.gz")
    assert label_map_reason(candidate) == ""
    assert finding_reason(candidate, {}, set()) == ""


def test_series_with_findings_are_flagged_by_decision_map_or_description(tmp_path, demo_data):
    candidates = discover(AllowedRoots([demo_data.root])).candidates
    lesions = next(c for c in candidates if "LESIONS" in c.description)
    normal = next(c for c in candidates if "NORMAL" in c.description)
    assert "suggests a finding" in finding_reason(lesions, {}, set())
    assert finding_reason(normal, {}, set()) == ""
    assert finding_reason(normal, {normal.study_key: "confirmed"}, set()) == "signed off as a confirmed anomaly"
    assert "reaches the threshold" in finding_reason(normal, {}, {normal.study_key})
    ground_truth = next(c for c in candidates if c.kind == "nifti")  # the demo's lesion mask
    assert label_map_reason(ground_truth).startswith("label map")
