"""Loading DICOM series: slice order, values, geometry, multi-frame, compression, refusals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from io_helpers import SPACING, assert_safe_message, identifiers_of, stored_hu
from pydicom.data import get_testdata_file

from adaptclip_med.errors import InputError
from adaptclip_med.io import dicom_pixels
from adaptclip_med.io.loader import load_study

LPS = np.array([-1.0, -1.0, 1.0])


def _ipp_by_sop(folder):
    return {str(ds.SOPInstanceUID): np.array([float(v) for v in ds.ImagePositionPatient])
            for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.glob("*.dcm"))}


def test_shuffled_files_are_sorted_along_the_normal_and_rescaled_to_hu(write_series, phantom):
    folder = write_series(shuffle_seed=11)
    volume, candidates = load_study(folder)
    np.testing.assert_array_equal(volume.array, stored_hu(phantom[0]))
    assert volume.array.dtype == np.float32 and volume.modality == "CT" and volume.source_kind == "dicom"
    assert volume.spacing == pytest.approx(SPACING)
    np.testing.assert_allclose(np.diff(volume.positions), SPACING[0])
    # sources and headers follow the sorted order: their IPP z increases slice by slice
    ipp = _ipp_by_sop(folder)
    zs = [ipp[s.sop_instance_uid][2] for s in volume.sources]
    assert zs == sorted(zs) and len(zs) == 8
    header_uids = [str(h.SOPInstanceUID) for h in volume.source_datasets_header]
    assert header_uids == [s.sop_instance_uid for s in volume.sources]
    assert all("PixelData" not in h for h in volume.source_datasets_header)
    np.testing.assert_array_equal(volume.to_source_array(volume.array), volume.array)
    assert volume.meta["rescale_intercepts"] == [-1024.0] and volume.meta["series_description"] == "PHANTOM HEAD"


def test_non_unit_rescale_and_signed_storage(write_series, phantom):
    volume, _ = load_study(write_series("half", rescale_slope=0.5, rescale_intercept=-1000.0))
    np.testing.assert_array_equal(volume.array, stored_hu(phantom[0], 0.5, -1000.0))
    signed, _ = load_study(write_series("signed", rescale_intercept=0.0))
    assert pydicom.dcmread(signed.sources[0].path, stop_before_pixels=True).PixelRepresentation == 1
    np.testing.assert_array_equal(signed.array, stored_hu(phantom[0], 1.0, 0.0))


def test_oblique_series_keeps_acquired_planes_and_an_affine_matching_ipp_iop(write_series, phantom):
    angle = np.radians(20.0)
    iop = (1.0, 0.0, 0.0, 0.0, float(np.cos(angle)), float(np.sin(angle)))
    folder = write_series("oblique", orientation=iop, shuffle_seed=2)
    volume, candidates = load_study(folder)
    np.testing.assert_array_equal(volume.array, stored_hu(phantom[0]))
    assert volume.meta["oblique_degrees"] == pytest.approx(20.0, abs=1e-3)
    assert candidates[0].orientation == "axial"
    ipp = _ipp_by_sop(folder)
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
    affine = volume.canonical_affine
    for z, source in enumerate(volume.sources):
        for r, c in ((0, 0), (5, 7), (47, 47)):
            expected_lps = ipp[source.sop_instance_uid] + r * SPACING[1] * col_dir + c * SPACING[2] * row_dir
            ras = affine @ np.array([z, r, c, 1.0])
            np.testing.assert_allclose(ras[:3] * LPS, expected_lps, atol=1e-4)


def test_enhanced_multiframe_with_shuffled_frames(write_series, phantom):
    folder = write_series("enhanced", multiframe=True, shuffle_seed=5)
    volume, candidates = load_study(folder)
    assert candidates[0].is_multiframe and candidates[0].num_slices == 8
    np.testing.assert_array_equal(volume.array, stored_hu(phantom[0]))
    frames = [s.frame_number for s in volume.sources]
    assert sorted(frames) == list(range(1, 9)) and frames != list(range(1, 9))
    assert len(volume.source_datasets_header) == 1


@pytest.mark.parametrize("axis", ["coronal", "sagittal"])
def test_other_slice_axes_are_exact_reorientations(write_series, phantom, axis):
    folder = write_series("axes")
    axial, _ = load_study(folder)
    other, _ = load_study(folder, axis=axis)
    z, y, x = axial.array.shape
    a = axial.array
    if axis == "coronal":  # slices posterior->anterior, rows superior->inferior, columns right->left
        expected = a[::-1, ::-1, :].transpose(1, 0, 2)
        assert other.spacing == pytest.approx((SPACING[1], SPACING[0], SPACING[2]))
    else:  # slices left->right, rows superior->inferior, columns anterior->posterior
        expected = a[::-1, :, ::-1].transpose(2, 0, 1)
        assert other.spacing == pytest.approx((SPACING[2], SPACING[0], SPACING[1]))
    np.testing.assert_array_equal(other.array, expected)
    assert np.all(np.diff(other.positions) > 0)
    np.testing.assert_array_equal(other.to_source_array(other.array), axial.to_source_array(axial.array))


def test_pydicom_samples_single_slice_compressed_and_colour():
    ct_file = get_testdata_file("CT_small.dcm")
    ct, _ = load_study(ct_file)
    ds = pydicom.dcmread(ct_file)
    np.testing.assert_array_equal(ct.array[0], ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert ct.array.shape == (1, 128, 128) and ct.spacing[0] == pytest.approx(5.0)
    reference, _ = load_study(get_testdata_file("MR_small.dcm"))
    for name in ("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"):
        decoded, _ = load_study(get_testdata_file(name))
        np.testing.assert_array_equal(decoded.array, reference.array)
    deflated, _ = load_study(get_testdata_file("image_dfl.dcm"))  # whole-dataset compression
    assert deflated.array.shape == (1, 512, 512) and deflated.array.max() > deflated.array.min()
    colour, _ = load_study(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    assert colour.array.shape == (2, 100, 100) and colour.meta["geometry"].startswith("assumed")


def test_missing_decoder_names_the_syntax_and_the_package(monkeypatch):
    monkeypatch.setattr(dicom_pixels, "get_decoder", lambda syntax: SimpleNamespace(is_available=False))
    path = get_testdata_file("MR_small_jp2klossless.dcm")
    with pytest.raises(InputError) as info:
        load_study(path)
    message = str(info.value)
    assert "JPEG 2000 Image Compression (Lossless Only)" in message and "pylibjpeg-openjpeg" in message
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert_safe_message(message, [str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)])


def test_inconsistent_series_are_refused_with_safe_messages(write_series, phantom, tmp_path):
    ids = dict(study_uid=pydicom.uid.generate_uid(), series_uid=pydicom.uid.generate_uid())
    write_series("dup", **ids)
    folder = write_series("dup", file_prefix="echo2", **ids)
    with pytest.raises(InputError, match="share a position") as info:
        load_study(folder)
    assert_safe_message(str(info.value), identifiers_of(folder))

    ids = dict(study_uid=pydicom.uid.generate_uid(), series_uid=pydicom.uid.generate_uid())
    write_series("sizes", **ids)
    folder = write_series("sizes", hu=phantom[0][:, :32, :], file_prefix="small", origin=(0, 0, 100), **ids)
    with pytest.raises(InputError, match="mixes image sizes") as info:
        load_study(folder)
    assert_safe_message(str(info.value), identifiers_of(folder))

    ids = dict(study_uid=pydicom.uid.generate_uid(), series_uid=pydicom.uid.generate_uid())
    write_series("orient", **ids)
    folder = write_series("orient", file_prefix="cor", orientation=(1, 0, 0, 0, 0, -1), **ids)
    with pytest.raises(InputError, match="different orientations") as info:
        load_study(folder)
    assert_safe_message(str(info.value), identifiers_of(folder))
