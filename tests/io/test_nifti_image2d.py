"""NIfTI and 2-D image readers, and the exact geometry round trip through write_nifti."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from io_helpers import assert_safe_message
from nibabel.testing import data_path
from PIL import Image

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import load_study
from adaptclip_med.io.nifti import load_nifti
from adaptclip_med.outputs.nifti import write_nifti


def _oblique_psl(folder):
    """A synthetic file stored P-S-L (a permuted, flipped, 15-degree rotated layout)."""
    angle = np.radians(15.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    axes = np.array([[0.0, 0.0, -1.2], [-0.9, 0.0, 0.0], [0.0, 2.5, 0.0]])  # columns: P, S, L
    affine = np.eye(4)
    affine[:3, :3] = rotation @ axes
    affine[:3, 3] = (10.0, -20.0, 5.0)
    data = np.random.default_rng(0).integers(-1000, 1000, size=(9, 7, 5)).astype(np.int16)
    path = folder / "oblique_psl.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.mark.parametrize("name", ["anatomical.nii", "standard.nii.gz", "reoriented_anat_moved.nii", "synthetic"])
@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_write_nifti_of_the_volume_reproduces_the_input_file(tmp_path, name, axis):
    path = _oblique_psl(tmp_path) if name == "synthetic" else os.path.join(data_path, name)
    source = nib.load(path)
    volume, candidates = load_study(path, axis=axis)
    assert candidates == [] and volume.source_kind == "nifti"
    out = write_nifti(volume.array, volume, tmp_path / "roundtrip.nii.gz")
    written = nib.load(out)
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    np.testing.assert_array_equal(written.get_fdata(dtype=np.float32), source.get_fdata(dtype=np.float32))
    # the canonical slice axis points to the requested direction
    direction = {"axial": 2, "coronal": 1, "sagittal": 0}[axis]
    step = volume.canonical_affine[:3, 0]
    assert np.argmax(np.abs(step)) == direction and step[direction] > 0


def test_axial_slices_are_upright_radiological_views_of_a_las_file(tmp_path):
    """anatomical.nii is LAS: axis 0 runs right->left, so the displayed columns equal axis 0."""
    source = nib.load(os.path.join(data_path, "anatomical.nii"))
    assert nib.aff2axcodes(source.affine) == ("L", "A", "S")
    data = source.get_fdata(dtype=np.float32)
    volume = load_nifti(os.path.join(data_path, "anatomical.nii"))
    assert volume.array.shape == (data.shape[2], data.shape[1], data.shape[0])
    # slice k, row 0 = most anterior (last A index), column 0 = most right (first index of an L axis)
    np.testing.assert_array_equal(volume.array[3], data[:, ::-1, 3].T)
    assert volume.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert np.all(np.diff(volume.positions) > 0)


def test_4d_files_use_the_first_volume(tmp_path):
    path = os.path.join(data_path, "example4d.nii.gz")
    volume = load_nifti(path)
    source = nib.load(path)
    assert volume.meta["volumes_in_file"] == 2
    out = write_nifti(volume.array, volume, tmp_path / "first.nii")
    np.testing.assert_array_equal(nib.load(out).get_fdata(), source.get_fdata()[..., 0])


def test_ct_like_nifti_is_recognised_and_nan_is_refused(tmp_path):
    hu = np.full((12, 10, 6), -1000.0, np.float32)
    hu[3:9, 2:8, :] = 40.0
    hu[2, 2:8, :] = 1200.0
    nib.save(nib.Nifti1Image(hu, np.diag([0.8, 0.8, 3.0, 1.0])), tmp_path / "ct.nii.gz")
    assert load_nifti(tmp_path / "ct.nii.gz").modality == "CT"
    assert load_nifti(tmp_path / "ct.nii.gz", modality="MR").modality == "MR"
    hu[5, 5, 2] = np.nan
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "1.2.840.113619.2.55.3.nii.gz")
    with pytest.raises(InputError, match="NaN or infinite") as info:
        load_study(tmp_path / "1.2.840.113619.2.55.3.nii.gz")
    assert_safe_message(str(info.value), ["1.2.840.113619.2.55.3"])
    (tmp_path / "broken.nii").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_study(tmp_path / "broken.nii")


def test_2d_images_become_single_grey_slices(tmp_path):
    grey = (np.arange(30 * 40) % 251).reshape(30, 40).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    volume, _ = load_study(tmp_path / "g.png")
    assert volume.array.shape == (1, 30, 40) and volume.modality == "OT" and volume.source_kind == "image2d"
    np.testing.assert_array_equal(volume.array[0], grey)
    np.testing.assert_array_equal(volume.to_source_array(volume.array), grey)
    rgb = np.stack([grey, grey, grey], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=100)
    colour, _ = load_study(tmp_path / "c.jpg")
    assert colour.array.shape == (1, 30, 40) and np.abs(colour.array[0] - grey).max() <= 3
    deep = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.tiff")
    np.testing.assert_array_equal(load_study(tmp_path / "d.tiff")[0].array[0], deep)
    out = write_nifti(volume.array, volume, tmp_path / "g.nii.gz", dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), grey)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a readable image"):
        load_study(tmp_path / "bad.png")
