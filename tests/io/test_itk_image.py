"""MetaImage (.mha/.mhd) and NRRD (.nrrd) studies and label maps read through SimpleITK: the same
canonical volume and geometry as a NIfTI of the same data, outputs in the input's geometry, and
one-line refusals for damaged files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from io_helpers import assert_safe_message

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.nifti import write_nifti

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _oblique_affine() -> np.ndarray:
    """A permuted, flipped, 15-degree rotated RAS affine (voxel (i, j, k) -> mm)."""
    angle = np.radians(15.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    axes = np.array([[0.0, 0.0, -1.2], [-0.9, 0.0, 0.0], [0.0, 2.5, 0.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ axes
    affine[:3, 3] = (10.0, -20.0, 5.0)
    return affine


def _write_itk(data_ijk: np.ndarray, affine: np.ndarray, path) -> None:
    """The same voxels and RAS geometry as a NIfTI, written as an ITK image (LPS frame)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data_ijk.T))  # ITK arrays are (k, j, i)
    matrix = LPS_TO_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (matrix / spacing).flatten()])
    image.SetOrigin([float(v) for v in LPS_TO_RAS @ affine[:3, 3]])
    sitk.WriteImage(image, str(path))


@pytest.fixture()
def same_data(tmp_path):
    data = np.random.default_rng(0).integers(-1000, 1000, size=(9, 7, 5)).astype(np.int16)
    affine = _oblique_affine()
    nifti = tmp_path / "study.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), nifti)
    return data, affine, nifti


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd"])
@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_itk_formats_give_the_volume_a_nifti_of_the_same_data_gives(tmp_path, same_data, suffix, axis):
    data, affine, nifti = same_data
    path = tmp_path / f"study{suffix}"
    _write_itk(data, affine, path)
    from_nifti, _ = load_study(nifti, axis=axis)
    from_itk, candidates = load_study(path, axis=axis)
    assert candidates == [] and from_itk.source_kind == "itk"
    np.testing.assert_array_equal(from_itk.array, from_nifti.array)
    np.testing.assert_allclose(from_itk.canonical_affine, from_nifti.canonical_affine, atol=1e-5)
    np.testing.assert_allclose(from_itk.spacing, from_nifti.spacing, atol=1e-5)
    np.testing.assert_allclose(from_itk.positions, from_nifti.positions, atol=1e-5)
    assert from_itk.meta["oblique_degrees"] == pytest.approx(from_nifti.meta["oblique_degrees"], abs=1e-3)


def test_outputs_of_an_itk_study_land_in_its_geometry(tmp_path, same_data):
    data, affine, _ = same_data
    path = tmp_path / "study.mha"
    _write_itk(data, affine, path)
    volume, _ = load_study(path)
    written = nib.load(str(write_nifti(volume.array, volume, tmp_path / "map.nii.gz")))
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), data.astype(np.float32))


def test_nrrd_label_map_matches_its_study(tmp_path, same_data):
    data, affine, _ = same_data
    labels = (data > 500).astype(np.uint8) * 2
    _write_itk(data, affine, tmp_path / "study.nrrd")
    _write_itk(labels, affine, tmp_path / "labels.nrrd")
    study, _ = load_study(tmp_path / "study.nrrd")
    label_volume, _ = load_study(tmp_path / "labels.nrrd")
    assert label_volume.array.shape == study.array.shape
    np.testing.assert_array_equal(label_volume.array > 0, study.array > 500)
    np.testing.assert_allclose(label_volume.canonical_affine, study.canonical_affine)


def test_2d_itk_image_is_one_slice(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12 * 10, dtype=np.int16).reshape(12, 10))
    image.SetSpacing((0.5, 0.7))
    sitk.WriteImage(image, str(tmp_path / "slice.mha"))
    volume, _ = load_study(tmp_path / "slice.mha")
    assert volume.array.shape[0] == 1 and sorted(volume.array.shape[1:]) == [10, 12]
    assert sorted(np.round(volume.spacing[1:], 6)) == [0.5, 0.7]


def test_damaged_itk_files_are_one_line_refusals(tmp_path, same_data):
    data, affine, _ = same_data
    _write_itk(data, affine, tmp_path / "study.mhd")
    (tmp_path / "study.raw").unlink()  # the header without its data file
    cases = {tmp_path / "study.mhd": "data file is missing",
             tmp_path / "garbage.nrrd": "not a readable NRRD"}
    (tmp_path / "garbage.nrrd").write_bytes(b"this is not an image")
    vector = sitk.Image([4, 4, 2], sitk.sitkVectorFloat32, 3)
    sitk.WriteImage(vector, str(tmp_path / "vector.mha"))
    cases[tmp_path / "vector.mha"] = "3-component"
    for path, reason in cases.items():
        with pytest.raises(InputError) as info:
            load_study(path)
        assert reason in str(info.value)
        assert_safe_message(str(info.value), [])
