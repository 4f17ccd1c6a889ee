"""SEG and Parametric Map objects pass dciodvfy for CT series and 2-D US/SC/NM sources; bad dates are repaired."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.dicom_seg import write_dicom_seg
from adaptclip_med.outputs.parametric_map import write_parametric_map

from tests.support.dicom_validation import assert_dicom_conformant

TWO_D = ["examples_palette.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "image_dfl.dcm"]  # US, SC 2 frames, NM, OT


def _seg(mask, volume, path):
    return write_dicom_seg(mask, volume, path, algorithm_name="AdaptCLIP", software_version="0.1.0",
                           series_description="test")


@pytest.mark.parametrize("name", TWO_D)
def test_seg_of_2d_sources_is_conformant_and_the_parametric_map_is_refused_in_one_line(tmp_path, name):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(get_testdata_file(name), source)
    volume, _ = load_study(source)
    mask = np.zeros(volume.array.shape, bool)
    mask[-1, 2:5, 2:5] = True  # partial mask: empty frames of multi-frame 2-D sources
    assert_dicom_conformant(_seg(mask, volume, tmp_path / "seg.dcm"))
    assert_dicom_conformant(_seg(np.zeros_like(mask), volume, tmp_path / "empty.dcm"))
    with pytest.raises(InputError, match="no frame of reference") as caught:
        write_parametric_map(np.full(volume.array.shape, 0.5, np.float32), volume, tmp_path / "pm.dcm")
    assert "\n" not in str(caught.value) and not (tmp_path / "pm.dcm").exists()


def test_parametric_map_has_laterality_and_invalid_study_date_is_repaired(write_series, phantom, tmp_path):
    folder = write_series()
    for file in folder.iterdir():
        dataset = pydicom.dcmread(file)
        dataset.StudyDate = "1997.04.24"
        dataset.save_as(file)
    volume, _ = load_study(folder)
    pm = write_parametric_map(np.full(volume.array.shape, 0.25, np.float32), volume, tmp_path / "pm.dcm")
    seg = _seg(phantom[1].astype(bool), volume, tmp_path / "seg.dcm")
    for path in (pm, seg):
        assert_dicom_conformant(path)
        assert pydicom.dcmread(path).StudyDate == "19970424"
    assert "Laterality" in pydicom.dcmread(pm)
