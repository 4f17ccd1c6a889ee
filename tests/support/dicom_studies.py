"""Tiny synthetic DICOM studies for the batch, node and PACS tests: real files (through the demo
phantom writer) with the awkward things department exports contain - localizers, reformats, SR documents, corrupt and
truncated files - and patient identifiers that must never leak into outputs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
from adaptclip_med.utils.redact import pseudonymous_key

from tests.support.tiny_models import TINY_OPTIONS

PATIENT_NAME = "SECRETSURNAME^JANE"
PATIENT_ID = "PID-8675309"
SHAPE = (5, 40, 40)
#: The CLI app with ``batch`` registered, run as a script by subprocess tests (tests/batch, tests/pacs).
CLI_SHIM = Path(__file__).resolve().parents[1] / "batch" / "batch_cli.py"


@dataclass
class Study:
    uid: str
    folder: Path
    files: list[Path] = field(default_factory=list)

    @property
    def key(self) -> str:
        return pseudonymous_key("study", self.uid)


def ct_series(folder: Path, study_uid: str, *, seed: int = 0, slices: int = SHAPE[0], thickness: float = 3.0,
              series_number: int = 1, description: str = "AX HEAD", image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
              modality: str = "CT", body_part: str | None = None, prefix: str = "img") -> list[Path]:
    hu, _ = make_head_ct_phantom(seed, (slices, SHAPE[1], SHAPE[2]))
    paths = write_dicom_series(hu, folder, spacing=(thickness, 4.0, 4.0), modality=modality, study_uid=study_uid,
                               series_number=series_number, series_description=description, image_type=image_type,
                               patient_name=PATIENT_NAME, patient_id=PATIENT_ID, file_prefix=prefix)
    if body_part is not None:
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.BodyPartExamined = body_part
            ds.save_as(path)
    return paths


def good_study(root: Path, name: str, seed: int) -> Study:
    uid = generate_uid()
    study = Study(uid, root / name)
    study.files = ct_series(study.folder, uid, seed=seed)
    return study


def sr_document(path: Path, study_uid: str) -> Path:
    """A Basic Text SR (a non-image object) in the given study."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality, ds.SeriesNumber, ds.PatientName, ds.PatientID = "SR", 99, PATIENT_NAME, PATIENT_ID
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def truncate(path: Path, keep_fraction: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


@dataclass
class MixedTree:
    root: Path
    good: list[Study]
    localizer_only: Study
    truncated_only: Study
    with_truncated_slice: Study
    corrupt: Path


def mixed_tree(root: Path) -> MixedTree:
    """Two clean studies (one split over two folders, one sharing a folder with another study),
    a study with a truncated slice, a study with only a localizer and an SR, a study whose only
    file is truncated, and a corrupt file."""
    first = good_study(root, "export_a", seed=1)
    # the first study's second half lives in another folder: grouping must follow the headers
    moved = root / "export_b" / "more"
    moved.mkdir(parents=True)
    for path in first.files[3:]:
        path.rename(moved / path.name)
    first.files = first.files[:3] + [moved / p.name for p in first.files[3:]]
    second_uid = generate_uid()
    second = Study(second_uid, root / "export_a")
    second.files = ct_series(root / "export_a", second_uid, seed=2, prefix="other")
    partial_uid = generate_uid()
    partial = Study(partial_uid, root / "partial")
    partial.files = ct_series(partial.folder, partial_uid, seed=3, slices=6)
    truncate(partial.files[-1])  # last slice: the series still loads, with one file skipped
    loc_uid = generate_uid()
    localizer = Study(loc_uid, root / "scout")
    localizer.files = ct_series(localizer.folder, loc_uid, seed=4, slices=2, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    localizer.files.append(sr_document(localizer.folder / "report.dcm", loc_uid))
    trunc_uid = generate_uid()
    broken = Study(trunc_uid, root / "broken")
    broken.files = [truncate(ct_series(broken.folder, trunc_uid, seed=5, slices=1)[0], 0.5)]
    corrupt = root / "broken" / "garbage.dcm"
    corrupt.write_bytes(b"\x00" * 64 + b"not dicom at all" * 20)
    return MixedTree(root, [first, second], localizer, broken, partial, corrupt)


def identifiers(*studies: Study) -> list[str]:
    return [PATIENT_NAME.split("^")[0], PATIENT_ID, *(s.uid for s in studies)]


def cli_command(*args: str) -> list[str]:
    return [sys.executable, str(CLI_SHIM), "batch", *args]


def tiny_cli_args() -> list[str]:
    return ["--backbone", TINY_OPTIONS["backbone"], "--backbone-weights", TINY_OPTIONS["backbone_weights"],
            "--adapters", "untrained", "--image-size", str(TINY_OPTIONS["image_size"]), "--offline",
            "--window", TINY_OPTIONS["window"], "--batch-size", str(TINY_OPTIONS["batch_size"]), "--device", "cpu",
            "--zero-shot"]
