"""Result files: NIfTI and DICOM SEG/parametric map in source geometry, CSV/JSON, overlays, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from io_helpers import SPACING
from PIL import Image

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.dicom_seg import write_dicom_seg
from adaptclip_med.outputs.nifti import write_nifti
from adaptclip_med.outputs.overlay import CONTOUR_RGB, render_overlay, save_overlay_png
from adaptclip_med.outputs.parametric_map import write_parametric_map
from adaptclip_med.outputs.plots import save_score_plot
from adaptclip_med.outputs.tables import write_slices_csv, write_study_json

from tests.support.dicom_validation import assert_dicom_conformant


def _seg_frames_by_source(seg) -> dict[tuple[str, int | None], np.ndarray]:
    """SEG frame pixels keyed by the (SOP instance, frame number) each frame references."""
    out = {}
    for index, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ref = group.DerivationImageSequence[0].SourceImageSequence[0]
        frame = int(ref.ReferencedFrameNumber) if "ReferencedFrameNumber" in ref else None
        pixels = seg.pixel_array if seg.NumberOfFrames > 1 else seg.pixel_array[None]
        out[(str(ref.ReferencedSOPInstanceUID), frame)] = pixels[index]
    return out


@pytest.mark.parametrize("multiframe", [False, True])
def test_seg_frames_reference_the_right_source_images(write_series, phantom, tmp_path, multiframe):
    folder = write_series("study", shuffle_seed=3, multiframe=multiframe)
    volume, _ = load_study(folder)
    mask = phantom[1].astype(bool)
    out = write_dicom_seg(mask, volume, tmp_path / "out" / "anomaly_seg.dcm", algorithm_name="AdaptCLIP",
                          software_version="0.1.0", series_description="AdaptCLIP anomaly mask")
    assert_dicom_conformant(out)
    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY" and seg.SeriesDescription == "AdaptCLIP anomaly mask"
    assert seg.get_segment_description(1).segment_label == "anomaly"
    assert str(seg.StudyInstanceUID) == str(volume.source_datasets_header[0].StudyInstanceUID)
    frames = _seg_frames_by_source(seg)
    lesion_slices = {k for k in range(mask.shape[0]) if mask[k].any()}
    assert len(frames) == len(lesion_slices)  # empty frames are omitted when the mask is not empty
    for k, source in enumerate(volume.sources):
        key = (source.sop_instance_uid, source.frame_number)
        if k in lesion_slices:
            np.testing.assert_array_equal(frames[key].astype(bool), mask[k])
        else:
            assert key not in frames


def test_empty_mask_still_gives_a_valid_seg_and_non_dicom_input_is_refused(write_series, tmp_path):
    volume, _ = load_study(write_series())
    out = write_dicom_seg(np.zeros(volume.array.shape, bool), volume, tmp_path / "empty.dcm",
                          algorithm_name="AdaptCLIP", software_version="0.1.0", series_description="none found")
    assert_dicom_conformant(out)
    seg = hd.seg.segread(out)
    assert seg.NumberOfFrames == volume.array.shape[0] and not seg.pixel_array.any()
    nifti_volume = volume.__class__(array=volume.array, spacing=(1, 1, 1), modality="CT",
                                    positions=np.arange(volume.array.shape[0]), source_kind="nifti", source_label="x")
    with pytest.raises(InputError, match="needs a DICOM input"):
        write_dicom_seg(np.zeros(volume.array.shape, bool), nifti_volume, tmp_path / "no.dcm",
                        algorithm_name="a", software_version="1", series_description="d")


def test_seg_of_sources_without_patient_attributes(write_series, phantom, tmp_path):
    """Anonymised sources often drop Type 2 patient/study attributes entirely (and old secondary
    captures the Modality); the SEG is still written (with them empty) and the loaded source
    headers are not modified."""
    folder = write_series()
    for file in folder.iterdir():
        dataset = pydicom.dcmread(file)
        for keyword in ("PatientID", "PatientName", "PatientBirthDate", "AccessionNumber", "StudyDate", "Modality"):
            if keyword in dataset:
                delattr(dataset, keyword)
        dataset.save_as(file)
    volume, _ = load_study(folder)
    out = write_dicom_seg(phantom[1].astype(bool), volume, tmp_path / "anon.dcm", algorithm_name="AdaptCLIP",
                          software_version="0.1.0", series_description="anonymised")
    assert_dicom_conformant(out)
    seg = pydicom.dcmread(out)
    assert seg.PatientID == "" and seg.AccessionNumber == "" and seg.Modality == "SEG"
    assert "PatientID" not in volume.source_datasets_header[0]


def test_seg_of_old_style_headers_repairs_times_and_quotes_no_name(write_series, phantom, tmp_path, recwarn):
    """ACR-NEMA style times ('14:04:38') made highdicom raise, and its patient-name check warned
    with the name in the message: the time is repaired and no warning quoting the name escapes."""
    folder = write_series()
    for file in folder.iterdir():
        dataset = pydicom.dcmread(file)
        dataset.StudyTime = "14:04:38"
        dataset.PatientName = "Anonymized"  # not in Family^Given form: highdicom warns about it
        dataset.save_as(file)
    volume, _ = load_study(folder)
    out = write_dicom_seg(phantom[1].astype(bool), volume, tmp_path / "old.dcm", algorithm_name="AdaptCLIP",
                          software_version="0.1.0", series_description="old headers")
    assert_dicom_conformant(out)
    assert pydicom.dcmread(out).StudyTime == "140438"
    assert not [w for w in recwarn.list if "Anonymized" in str(w.message)]
    assert volume.source_datasets_header[0].StudyTime == "14:04:38"  # the loaded headers are untouched


def test_parametric_map_holds_float_probabilities_per_source_frame(write_series, phantom, tmp_path):
    volume, _ = load_study(write_series(shuffle_seed=1))
    prob = np.linspace(0.0, 1.0, volume.array.size, dtype=np.float32).reshape(volume.array.shape)
    out = write_parametric_map(prob, volume, tmp_path / "prob_map.dcm", software_version="0.1.0")
    assert_dicom_conformant(out)
    pmap = pydicom.dcmread(out)
    assert pmap.SOPClassUID.name == "Parametric Map Storage" and "FloatPixelData" in pmap
    assert pmap.NumberOfFrames == volume.array.shape[0]
    by_uid = {str(g.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID): i
              for i, g in enumerate(pmap.PerFrameFunctionalGroupsSequence)}
    source = volume.to_source_array(prob)
    for k, s in enumerate(volume.sources):
        np.testing.assert_allclose(pmap.pixel_array[by_uid[s.sop_instance_uid]], source[k], atol=1e-6)


def test_nifti_from_dicom_has_an_affine_consistent_with_ipp_and_iop(write_series, phantom, tmp_path):
    angle = np.radians(12.0)
    iop = (np.cos(angle), np.sin(angle), 0.0, 0.0, 0.0, -1.0)  # coronal-ish, rotated in-plane
    folder = write_series("coronal", orientation=iop, shuffle_seed=9)
    volume, _ = load_study(folder)
    assert volume.array.shape == (48, 8, 48)  # axial slicing of a coronal acquisition
    canonical_mask = volume.reorientation.to_canonical(phantom[1])
    out = write_nifti(canonical_mask, volume, tmp_path / "mask.nii.gz", dtype=np.uint8)
    image = nib.load(out)
    assert image.get_data_dtype() == np.uint8 and int(image.header["sform_code"]) == 1
    data = np.asarray(image.dataobj)
    # source layout: (slice along the normal, row, column), i.e. the slices as written
    np.testing.assert_array_equal(data, phantom[1])
    for source_index, source in enumerate(volume.sources):
        ds = pydicom.dcmread(source.path, stop_before_pixels=True)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
        r, c = 4, 9
        lps = ipp + r * SPACING[1] * col_dir + c * SPACING[2] * row_dir
        ras = image.affine @ np.array([source_index, r, c, 1.0])
        np.testing.assert_allclose(ras[:3], lps * np.array([-1, -1, 1]), atol=1e-4)
    with pytest.raises(InputError, match="does not match"):
        write_nifti(np.zeros((2, 2, 2)), volume, tmp_path / "bad.nii.gz")


def test_slices_csv_and_study_json(tmp_path):
    rows = [{"slice": 1, "instance_number": 12, "array_index": 0, "position_mm": -12.5, "score": float("nan"),
             "skipped": True, "skip_reason": "background"},
            {"slice": 2, "array_index": 1, "position_mm": np.float64(-9.5), "score": np.float32(0.123456789), "skipped": False,
             "skip_reason": None, "relative_position": 0.0}]
    out = write_slices_csv(tmp_path / "slices.csv", rows)
    with open(out, newline="") as handle:
        parsed = list(csv.DictReader(handle))
    assert list(parsed[0]) == ["slice", "instance_number", "array_index", "position_mm", "score", "skipped",
                               "skip_reason", "relative_position"]
    assert parsed[0] == {"slice": "1", "instance_number": "12", "array_index": "0", "position_mm": "-12.5", "score": "", "skipped": "true",
                         "skip_reason": "background", "relative_position": ""}
    assert parsed[1]["score"] == "0.123457" and parsed[1]["skipped"] == "false"
    payload = {"score": np.float32(0.5), "top_slices": np.array([3, 1]), "threshold": float("inf"),
               "output": Path("/tmp/x"), "b": {"z": 1, "a": np.int64(2)}}
    text = write_study_json(tmp_path / "study.json", payload).read_text()
    assert json.loads(text) == {"score": 0.5, "top_slices": [3, 1], "threshold": None, "output": "/tmp/x",
                                "b": {"a": 2, "z": 1}}
    assert text.index('"b"') < text.index('"output"') < text.index('"score"')


def test_overlay_tints_only_suspicious_pixels_and_outlines_the_mask(tmp_path):
    slice01 = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    prob = np.zeros((16, 16), np.float32)
    prob[4:12, 4:12] = 0.9  # lower resolution than the slice: resized
    rgb = render_overlay(slice01, prob, threshold=0.5, alpha=0.6)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    grey = np.round(slice01 * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb[0], np.stack([grey[0]] * 3, axis=-1))  # untouched where prob = 0
    outline = np.all(rgb == CONTOUR_RGB, axis=-1)
    assert outline.any() and not outline[16, 16] and not outline[0].any()
    assert not np.all(rgb[16, 16] == rgb[16, 16, 0])  # the inside is coloured, not grey
    out = save_overlay_png(tmp_path / "overlay.png", slice01, prob)
    with Image.open(out) as image:
        assert image.size == (32, 32) and image.mode == "RGB"


def test_score_plot_is_a_png(tmp_path):
    positions = np.arange(10) * 5.0
    scores = np.where(np.arange(10) < 2, np.nan, np.linspace(0.1, 0.9, 10))
    out = save_score_plot(tmp_path / "scores.png", positions, scores, np.arange(10) < 2, top_indices=[9, 8],
                          threshold=0.5, title="phantom")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (700, 300)
    with pytest.raises(ValueError):
        save_score_plot(tmp_path / "bad.png", positions, scores[:3], [False] * 3, [])
