"""What counts as a study in a folder, and the ONE pseudonymous key scheme studies are filed under.

Batch scoring (:mod:`adaptclip_med.batch.discovery`: per-study tasks, file errors, DICOMDIR checks)
and the review dashboard (:mod:`adaptclip_med.review.discovery`: per-series lists, label maps,
patient names on request) both find studies through these rules, so a study gets the same key on
every surface and in every output folder name:

* a DICOM study: ``pseudonymous_key("study", StudyInstanceUID)`` (16 hex; :func:`scan_dicom` uses it);
* a volume file (NIfTI, MetaImage, NRRD): ``<kind>-<pseudonymous_key(kind, location)>`` where the
  location is the file's path relative to the folder it was found under: a batch run's input
  root, or for the dashboard the file system root (its one review store spans several data roots
  and uploads, where relative names like ``scan.nii.gz`` would collide).

No UID, name or path appears in a key; only a hash of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from adaptclip_med.io.itk_image import is_itk_image
from adaptclip_med.io.loader import VOLUME_FILE_SUFFIXES
from adaptclip_med.utils.redact import pseudonymous_key

#: This project's own result files (maps, masks, SEG) are not studies (a results folder inside the input tree).
RESULT_PREFIXES = ("anomaly_", "reviewed_")
_RESULT_SUFFIXES = (".csv", ".json", ".png", ".html", ".pdf", ".sqlite", ".sqlite-wal", ".sqlite-shm", ".safetensors")


def study_key_for_uid(study_uid: str) -> str:
    """The key of a DICOM study (same derivation as :func:`~adaptclip_med.io.dicom_scan.scan_dicom`'s ``study_key``)."""
    return pseudonymous_key("study", study_uid)


def is_result_file(path: Path) -> bool:
    """Outputs of this project (maps, masks, SEG, reports, stores) are not studies to score or review."""
    return path.name.lower().startswith(RESULT_PREFIXES) or path.suffix.lower() in _RESULT_SUFFIXES


def is_volume_study_file(path: Path) -> bool:
    """A NIfTI / MetaImage / NRRD file that is a study of its own (not one of our result files)."""
    return path.name.lower().endswith(VOLUME_FILE_SUFFIXES) and not is_result_file(path)


def volume_file_kind(path: Path) -> str:
    """Which reader opens a volume file: ``itk`` (MetaImage/NRRD) or ``nifti``."""
    return "itk" if is_itk_image(path) else "nifti"


def volume_file_key(path: Path, root: Path) -> str:
    """The key of a volume-file study: its kind and a hash of its path relative to ``root`` (the
    folder it was found under; just the file name when ``root`` is the file itself)."""
    kind = volume_file_kind(path)
    location = os.path.relpath(path, root) if Path(root).is_dir() else Path(path).name
    return f"{kind}-{pseudonymous_key(kind, location)}"
