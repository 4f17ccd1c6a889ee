"""Scanning folders of DICOM files into series, with skipped files and reasons."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from io_helpers import assert_safe_message, identifiers_of, write_basic_sr
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet

from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_scan import all_skipped, scan_dicom
from adaptclip_med.io.loader import default_series, load_study


def test_two_series_in_one_folder_are_grouped_by_headers_not_folders(write_series, tmp_path, phantom):
    study_uid = pydicom.uid.generate_uid()
    folder = write_series("mixed", study_uid=study_uid, series_number=2, series_description="HEAD 3mm")
    thin = np.repeat(phantom[0], 2, axis=0)  # more slices: the default rule must pick it
    write_series("mixed", hu=thin, study_uid=study_uid, series_number=3, series_description="HEAD 1.5mm",
                 spacing=(1.5, 1.5, 1.25), file_prefix="thin")
    # a third copy of series 2 scattered into a sub-folder must not create another series
    (folder / "sub").mkdir()
    shutil.move(str(folder / "slice_0001.dcm"), folder / "sub" / "moved.dcm")
    series = scan_dicom(folder)
    images = [s for s in series if s.kind == "image"]
    assert [(s.series_number, s.num_slices) for s in images] == [(2, 8), (3, 16)]
    assert len({s.study_key for s in images}) == 1
    assert default_series(series).series_number == 3
    assert all(s.orientation == "axial" and s.modality == "CT" for s in images)
    assert images[0].slice_thickness == pytest.approx(3.0)
    for key in (s.series_key for s in images):
        assert len(key) == 16 and key not in identifiers_of(folder)


def test_non_image_truncated_localizer_and_junk_files_are_skipped_with_reasons(write_series, tmp_path):
    study_uid = pydicom.uid.generate_uid()
    folder = write_series("study", study_uid=study_uid)
    write_series("study", hu=np.full((1, 48, 48), -1000.0, np.float32), study_uid=study_uid,
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), file_prefix="scout", series_number=9)
    write_basic_sr(folder / "report.dcm", study_uid)
    truncated = folder / "slice_0003.dcm"
    truncated.write_bytes(truncated.read_bytes()[:-500])
    (folder / "notes.txt").write_text("not dicom")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    series = scan_dicom(folder)
    reasons = {s.label: s.reason for s in all_skipped(series)}
    assert reasons["slice_0003.dcm"] == "truncated file (pixel data incomplete)"
    assert reasons["report.dcm"] == "non-image object (Basic Text SR Storage)"
    assert reasons["notes.txt"] == "not a DICOM file"
    assert ".DS_Store" not in reasons
    main = default_series(series)
    assert main.num_slices == 7 and not main.is_localizer
    scout = next(s for s in series if s.series_number == 9)
    assert scout.is_localizer and scout.kind == "image"
    assert {s.kind for s in series} == {"image", "non-image", "unreadable"}
    # a truncated slice leaves a gap: loading must refuse rather than stretch the volume, naming the file
    with pytest.raises(InputError, match="slices are missing from the series because 1 file.*truncated"):
        load_study(folder)


def test_localizer_mixed_into_an_image_series_is_moved_to_skipped(write_series, phantom):
    series_uid, study_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    folder = write_series("s", series_uid=series_uid, study_uid=study_uid)
    write_series("s", hu=phantom[0][:1], series_uid=series_uid, study_uid=study_uid, file_prefix="loc",
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), orientation=(0, 1, 0, 0, 0, -1))
    (info,) = [s for s in scan_dicom(folder) if s.kind == "image"]
    assert info.num_slices == 8
    assert [(s.label, s.reason) for s in info.skipped] == [("loc_0001.dcm", "localizer/scout image")]


def test_dicomdir_file_sets_and_duplicates(write_series, tmp_path):
    folder = write_series("plain")
    fileset = FileSet()
    for path in sorted(folder.iterdir()):
        fileset.add(pydicom.dcmread(path))
    fileset.write(tmp_path / "media")
    shutil.copy(folder / "slice_0002.dcm", tmp_path / "media" / "copy_of_slice.dcm")
    series = scan_dicom(tmp_path / "media")
    (info,) = [s for s in series if s.kind == "image"]
    assert info.num_slices == 8
    assert not any(f.name == "DICOMDIR" for f in info.files)
    assert [s.reason for s in all_skipped(series)] == ["duplicate of another file (same SOP instance)"]


def test_pydicom_sample_files_are_classified():
    sr = scan_dicom(get_testdata_file("test-SR.dcm"))
    assert sr[0].kind == "non-image" and "Comprehensive SR" in sr[0].skipped[0].reason
    waveform = scan_dicom(get_testdata_file("waveform_ecg.dcm"))
    assert waveform[0].skipped[0].reason.startswith("non-image object")
    truncated = scan_dicom(get_testdata_file("MR_truncated.dcm"))
    assert truncated[0].skipped[0].reason.startswith("truncated")
    rt = scan_dicom(get_testdata_file("rtplan.dcm"))
    assert rt[0].kind == "non-image"
    sc = scan_dicom(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    assert sc[0].kind == "image" and sc[0].is_secondary_capture and sc[0].is_multiframe and sc[0].num_slices == 2


def test_empty_and_imageless_folders_give_one_line_errors(tmp_path, write_series):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="the folder is empty") as info:
        load_study(tmp_path / "empty")
    assert_safe_message(str(info.value), [])
    study_uid = pydicom.uid.generate_uid()
    only_sr = tmp_path / "sr_only"
    only_sr.mkdir()
    write_basic_sr(only_sr / "report.dcm", study_uid)
    with pytest.raises(InputError) as info:
        load_study(only_sr)
    message = str(info.value)
    assert "no DICOM image series found" in message and "Basic Text SR" in message
    assert_safe_message(message, identifiers_of(only_sr))
    with pytest.raises(InputError, match="no such file or folder"):
        load_study(tmp_path / "missing")
