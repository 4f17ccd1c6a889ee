"""Batch folders may hold NIfTI studies (one per .nii/.nii.gz file) beside DICOM studies."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np

from adaptclip_med.batch.runner import run_batch
from adaptclip_med.batch.worker import BatchOptions
from adaptclip_med.batch.discovery import FolderSource, discover_folder
from adaptclip_med.demo.phantom import make_head_ct_phantom
from tests.support.dicom_studies import SHAPE, good_study


def test_nifti_files_are_studies_and_are_scored(tmp_path, scoring):
    src = tmp_path / "src"
    good_study(src, "dicom_study", seed=1)
    hu, _ = make_head_ct_phantom(2, SHAPE)
    (src / "nifti").mkdir()
    nib.save(nib.Nifti1Image(np.transpose(hu, (2, 1, 0)).astype(np.float32), np.diag([4.0, 4.0, 3.0, 1.0])),
             str(src / "nifti" / "head.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), str(src / "nifti" / "anomaly_mask.nii.gz"))
    discovery = discover_folder(src)
    assert [t.kind for t in discovery.studies].count("nifti") == 1 and not discovery.file_errors
    out = tmp_path / "out"
    summary = run_batch(FolderSource(src), scoring, BatchOptions(out_dir=out))
    assert summary.scored == 2 and summary.failed == 0 and summary.exit_code == 0
    with open(out / "worklist.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    nifti = [r for r in rows if r["study_key"].startswith("nifti-")]
    assert len(nifti) == 1 and nifti[0]["status"] == "done" and nifti[0]["series"] == "NIfTI volume"
    assert (out / nifti[0]["study_key"] / "anomaly_probability.nii.gz").is_file()
    assert "head" not in nifti[0]["study_key"]


def test_metaimage_and_nrrd_files_are_studies_and_are_scored(tmp_path, scoring):
    import SimpleITK as sitk

    src = tmp_path / "src"
    (src / "itk").mkdir(parents=True)
    hu, _ = make_head_ct_phantom(3, SHAPE)
    image = sitk.GetImageFromArray(hu.astype(np.int16))  # (Z, Y, X) -> ITK (x, y, z)
    image.SetSpacing((4.0, 4.0, 3.0))
    sitk.WriteImage(image, str(src / "itk" / "head.mha"))
    sitk.WriteImage(image, str(src / "itk" / "detached.mhd"))  # + detached.raw: part of the study, not an error
    sitk.WriteImage(image, str(src / "itk" / "head.nrrd"))
    discovery = discover_folder(src)
    assert [t.kind for t in discovery.studies] == ["itk"] * 3 and not discovery.file_errors
    out = tmp_path / "out"
    summary = run_batch(FolderSource(src), scoring, BatchOptions(out_dir=out))
    assert summary.scored == 3 and summary.failed == 0
    with open(out / "worklist.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["study_key"].startswith("itk-") and r["series"] == "ITK image volume" for r in rows)
    assert all((out / r["study_key"] / "anomaly_probability.nii.gz").is_file() for r in rows)
