"""The synthetic head CT phantom and the demo dataset."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from adaptclip_med.demo.phantom import make_demo_dataset, make_head_ct_phantom
from adaptclip_med.io.loader import load_study
from adaptclip_med.utils.redact import describe_path


def test_phantom_is_head_like_in_hounsfield_units():
    hu, mask = make_head_ct_phantom(seed=1, shape=(12, 96, 96), lesions=0)
    assert hu.dtype == np.float32 and mask.dtype == np.uint8 and not mask.any()
    middle = hu[6]
    assert middle[0, 0] == pytest.approx(-1000, abs=20)  # air in the corner
    assert middle[48, 48] == pytest.approx(30, abs=20)  # brain in the centre
    assert (middle > 600).mean() > 0.02  # a skull ring
    brain = (middle > 15) & (middle < 60)
    assert brain.mean() > 0.2
    assert np.any((middle > -10) & (middle < 15))  # ventricles (CSF-like)
    head_area = [(s > -500).sum() for s in hu]
    assert len(set(head_area)) > 6  # the section changes along z
    other, _ = make_head_ct_phantom(seed=2, shape=(12, 96, 96), lesions=0)
    assert np.abs(other - hu).mean() > 1.0  # seeds give different heads
    again, _ = make_head_ct_phantom(seed=1, shape=(12, 96, 96), lesions=0)
    np.testing.assert_array_equal(again, hu)


def test_lesions_lie_in_the_brain_and_change_the_density():
    normal, _ = make_head_ct_phantom(seed=3, shape=(16, 96, 96), lesions=0)
    hu, mask = make_head_ct_phantom(seed=3, shape=(16, 96, 96), lesions=3)
    labels, count = ndimage.label(mask)
    assert 1 <= count <= 3 and mask.sum() >= 36
    lesion = mask.astype(bool)
    assert np.all((normal[lesion] > -20) & (normal[lesion] < 70))  # inside soft tissue, not skull or air
    shift = np.abs(hu[lesion] - normal[lesion])
    assert shift.min() >= 11.9 and shift.max() <= 60.1
    np.testing.assert_array_equal(hu[~lesion], normal[~lesion])


def test_demo_dataset_has_a_study_references_and_ground_truth(tmp_path):
    paths = make_demo_dataset(tmp_path / "demo", seed=0, n_references=2, shape=(10, 64, 64))
    study, _ = load_study(paths.study_dir)
    assert study.array.shape == (10, 64, 64) and study.modality == "CT"
    assert len(paths.reference_dirs) == 2
    references = [load_study(p)[0] for p in paths.reference_dirs]
    assert all(r.array.shape == study.array.shape for r in references)
    assert np.abs(references[0].array - references[1].array).mean() > 1.0
    truth = nib.load(paths.ground_truth_nifti)
    np.testing.assert_allclose(truth.affine, study.source_affine)
    assert 2 <= ndimage.label(np.asarray(truth.dataobj))[1] <= 3
    for file in paths.study_dir.iterdir():
        assert file.name.startswith("slice_") and describe_path(file) == str(file)  # no UIDs in names
