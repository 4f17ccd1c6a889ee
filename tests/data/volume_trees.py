"""Tiny phantom datasets in the ``volumes`` layout (imagesTr/labelsTr), shared by data and training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.nifti import write_nifti

SHAPE = (8, 48, 48)


def _write_case(root: Path, name: str, seed: int, lesions: int, dicom: bool, labelled: bool) -> None:
    """One phantom case: DICOM folder or NIfTI image (nnU-Net ``_0000`` name), NIfTI label map."""
    hu, mask = make_head_ct_phantom(seed, SHAPE, lesions=lesions)
    series = root / "dicom_sources" / name
    write_dicom_series(hu, series)
    volume, _ = load_study(series)
    images = root / "imagesTr"
    images.mkdir(parents=True, exist_ok=True)
    if dicom:
        write_dicom_series(hu, images / name)
    else:
        write_nifti(volume.array, volume, images / f"{name}_0000.nii.gz")
    if labelled:
        write_nifti(_canonical_mask(mask, series), volume, root / "labelsTr" / f"{name}.nii.gz", dtype=np.uint8)


def _canonical_mask(mask: np.ndarray, series: Path) -> np.ndarray:
    """The phantom mask in the loader's canonical frame (written as DICOM, read back)."""
    folder = series.with_name(series.name + "_mask")
    write_dicom_series(mask.astype(np.float32) * 100, folder)
    return (np.asarray(load_study(folder)[0].array) > 50).astype(np.uint8)


def write_volume_dataset(root: Path) -> Path:
    """Two labelled cases (NIfTI and DICOM), one normal scan, one broken file, dataset.json."""
    (root / "labelsTr").mkdir(parents=True)
    _write_case(root, "lesion_a", seed=1, lesions=2, dicom=False, labelled=True)
    _write_case(root, "lesion_b", seed=2, lesions=2, dicom=True, labelled=True)
    _write_case(root, "normal_c", seed=3, lesions=0, dicom=False, labelled=False)
    (root / "imagesTr" / "broken_0000.nii.gz").write_bytes(b"not a nifti file")
    (root / "dataset.json").write_text(json.dumps({"name": "ct_head", "adaptclip": {"window": "brain"}}))
    return root
