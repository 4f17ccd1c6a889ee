"""Damaged inputs are reported by their real cause: a truncated slice, a NIfTI header larger than its file."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from io_helpers import assert_safe_message, identifiers_of

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import load_study


def test_truncated_slice_inside_a_series_is_named_as_the_cause(write_series):
    folder = write_series()
    files = sorted(folder.glob("*.dcm"))
    middle = files[len(files) // 2]
    data = middle.read_bytes()
    middle.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as caught:
        load_study(folder)
    message = str(caught.value)
    assert "not uniform" not in message and "truncated" in message and middle.name in message
    assert_safe_message(message, identifiers_of(folder))


def _huge_header() -> bytes:
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    header = image.header
    header.set_data_shape((32767, 32767, 32767))
    return header.binaryblock + b"\0" * 4 + b"\0" * 256  # 348 + extension flag + a few voxels: ~608 bytes


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_header_claiming_more_voxels_than_the_file_holds_is_refused_before_allocating(tmp_path, suffix):
    path = tmp_path / f"tiny{suffix}"
    raw = _huge_header()
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    with pytest.raises(InputError) as caught:
        load_study(path)
    message = str(caught.value)
    assert "MemoryError" not in message and "32767x32767x32767" in message and "\n" not in message
    assert ("truncated" in message) if suffix == ".nii" else ("limit" in message)
