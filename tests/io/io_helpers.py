"""Helpers shared by the I/O tests (kept out of conftest so test modules can import them)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

SHAPE = (8, 48, 48)
SPACING = (3.0, 1.5, 1.25)


def stored_hu(hu: np.ndarray, slope: float = 1.0, intercept: float = -1024.0) -> np.ndarray:
    """The values a reader must return after the 16-bit storage round trip."""
    return (np.round((hu.astype(np.float64) - intercept) / slope) * slope + intercept).astype(np.float32)


def write_basic_sr(path: Path, study_uid: str) -> Path:
    """A minimal Basic Text SR document: a real non-image object in the same study."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BasicTextSRStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = BasicTextSRStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "SR", 50, 1
    ds.PatientName, ds.PatientID = "PHANTOM^DEMO", "PHANTOM-0001"
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    ds.save_as(path, enforce_file_format=True)
    return path


def identifiers_of(folder: Path) -> list[str]:
    """Patient names/IDs, birth dates and Study/Series/SOP UIDs found in a folder's DICOM files."""
    values: set[str] = set()
    for file in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID",
                        "SOPInstanceUID"):
            if ds.get(keyword):
                values.add(str(ds.get(keyword)))
    return sorted(values)


def assert_safe_message(message: str, forbidden: list[str]) -> None:
    """One line, and none of the identifiers (nor any long UID-like token) in it."""
    assert "\n" not in message and message.strip() == message and message
    for value in forbidden:
        assert value not in message, f"identifier leaked into: {message}"
    assert not re.search(r"\d+(\.\d+){4,}", message), f"UID-like token in: {message}"
