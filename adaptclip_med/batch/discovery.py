"""Finding the studies in a folder tree of any structure.

Files are grouped by the StudyInstanceUID in their headers (through :func:`scan_dicom`), never by
folder, because exports mix studies in one folder and split one study across several.  A study
task carries its file list (not its headers) so discovery stays cheap to send to other ranks and
each worker re-reads only the headers of the study it scores.  Files that belong to no study
(corrupt, not DICOM, no identifiers) become file-level errors; DICOMDIR indexes are checked for
files they list but the media no longer holds.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from adaptclip_med.batch.rules import SeriesDecision, SeriesRules
from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_scan import is_input_folder, scan_dicom
from adaptclip_med.io.discovery import is_volume_study_file, volume_file_key, volume_file_kind
from adaptclip_med.io.file_kinds import regular_file_problem
from adaptclip_med.io.itk_image import is_detached_itk_data
from adaptclip_med.io.loader import NIFTI_SUFFIXES
from adaptclip_med.utils.redact import describe_path, file_key, relative_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyTask:
    """One study to score.  ``key`` is pseudonymous; the locators (file paths, Study UID) are
    needed to read the study and are kept out of ``repr`` so they never reach a log line."""

    key: str
    files: tuple[str, ...] = field(default=(), repr=False)
    study_uid: str | None = field(default=None, repr=False)
    kind: str = "dicom"  # or "nifti" / "itk": one study per .nii/.nii.gz or .mha/.mhd/.nrrd/.nhdr file


@dataclass(frozen=True)
class FileError:
    """A file that could not be attributed to any study (key = hash of its relative path)."""

    key: str
    reason: str
    #: the path relative to the input root: for the owner-only file index only, never shown
    path: str = field(default="", repr=False, compare=False)


@dataclass
class Discovery:
    studies: list[StudyTask]
    file_errors: list[FileError] = field(default_factory=list)
    #: pseudonymous file key -> path relative to the input root, for the owner-only file index
    file_index: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class StudyFiles:
    """Where a study's files are for scanning; ``root`` is what skipped files' keys are relative to, and
    ``left`` holds decisions about series the source already excluded (never fetched)."""

    paths: list[Path]
    root: Path
    left: list[SeriesDecision] = field(default_factory=list)


class FolderSource:
    """Studies found in a folder tree (or one file); files are read in place."""

    def __init__(self, root: Path, exclude: tuple[Path, ...] = ()) -> None:
        self.root = Path(root)
        self.exclude = tuple(Path(p) for p in exclude)  # e.g. the run's --out inside the input tree

    def discover(self) -> Discovery:
        return discover_folder(self.root, self.exclude)

    def open_study(self, task: StudyTask, scratch: Path, rules: SeriesRules) -> StudyFiles:
        return StudyFiles([Path(p) for p in task.files], self.root)  # file keys are relative to the input root


def file_error(path: Path, root: Path, reason: str) -> FileError:
    """A file-level error named by the file's pseudonymous key only (never its path: folder names
    often hold patient names); the run's owner-only file index maps keys back to paths."""
    return FileError(file_key(path, root), reason, relative_label(path, root))


def nifti_task(path: Path, root: Path) -> StudyTask:
    """One study per volume file; the kind (and key prefix) says which reader: 'nifti' or 'itk'."""
    return StudyTask(volume_file_key(path, root), (str(path),), kind=volume_file_kind(path))


def discover_folder(root: Path, exclude: tuple[Path, ...] = ()) -> Discovery:
    """All studies under ``root`` (a folder tree or a single file), sorted by key: DICOM studies
    grouped by Study UID, and one study per NIfTI file.  Folders under ``exclude`` and this
    program's output folders are not inputs."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{describe_path(root)}: no such file or folder")
    files_by_study: dict[str, set[str]] = {}
    errors: list[FileError] = []
    niftis: list[StudyTask] = []
    unreadable: list[Path] = []
    index: dict[str, str] = {}

    def label(path: Path) -> str:
        key = file_key(path, root)
        index[key] = relative_label(path, root)
        return key

    for info in scan_dicom(root, root=root if root.is_dir() else root.parent, exclude=exclude, label_for=label):
        if info.kind == "unreadable":
            for skip in info.skipped:
                if is_volume_study_file(skip.path) and regular_file_problem(skip.path) is None:
                    niftis.append(nifti_task(skip.path, root))
                elif skip.path.name.lower().endswith(NIFTI_SUFFIXES):
                    log.info("%s: a result file of this project, not a study", describe_path(skip.path, root))
                elif is_detached_itk_data(skip.path):
                    log.info("%s: the data file of a MetaImage/NRRD header", describe_path(skip.path, root))
                else:
                    errors.append(file_error(skip.path, root, skip.reason))
                    unreadable.append(skip.path)
            continue
        paths = [*info.files, *(skip.path for skip in info.skipped)]
        files_by_study.setdefault(info.study_key, set()).update(str(p) for p in paths)
    _attach_to_their_study(unreadable, files_by_study)
    if root.is_dir():
        errors.extend(dicomdir_problems(root, exclude))
    studies = [StudyTask(key, tuple(sorted(files))) for key, files in sorted(files_by_study.items())]
    studies = sorted(studies + niftis, key=lambda t: t.key)
    for task in studies:
        for name in task.files:
            index.setdefault(file_key(name, root), relative_label(name, root))
    for error in errors:  # DICOMDIR entries (missing files) are named by key as well
        index.setdefault(error.key, error.path)
    return Discovery(studies, sorted(errors, key=lambda e: e.key), {k: v for k, v in index.items() if v})


def _attach_to_their_study(unreadable: list[Path], files_by_study: dict[str, set[str]]) -> None:
    """An unreadable file in a folder holding files of ONE study only is most likely one of its
    slices: it travels with that study, so a gap it leaves is reported as this file being
    unreadable, not as non-uniform slice spacing (it stays a file error in errors.csv too)."""
    studies_in: dict[Path, set[str]] = {}
    for key, files in files_by_study.items():
        for name in files:
            studies_in.setdefault(Path(name).parent, set()).add(key)
    for path in unreadable:
        keys = studies_in.get(path.parent, set())
        if len(keys) == 1:
            files_by_study[next(iter(keys))].add(str(path))


def _find_case_insensitive(base: Path, parts: list[str]) -> Path | None:
    """Media written on one system and mounted on another often change the case of names."""
    current = base
    for part in parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        try:
            match = next((entry for entry in os.listdir(current) if entry.upper() == part.upper()), None)
        except OSError:
            return None
        if match is None:
            return None
        current = current / match
    return current


def dicomdir_problems(root: Path, exclude: tuple[Path, ...] = ()) -> list[FileError]:
    """Files a DICOMDIR under ``root`` lists that are missing (a truncated copy of the media)."""
    errors: list[FileError] = []
    excluded = frozenset(os.path.realpath(p) for p in exclude)
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if is_input_folder(Path(folder) / d, excluded))
        for name in names:
            if name.upper() != "DICOMDIR":
                continue
            index = Path(folder) / name
            problem = regular_file_problem(index)
            if problem is not None:
                errors.append(file_error(index, root, problem))
                continue
            try:
                records = pydicom.dcmread(index, stop_before_pixels=True).get("DirectoryRecordSequence", [])
            except Exception as exc:  # a broken index must not stop the walk-based discovery
                reason = f"DICOMDIR unreadable ({type(exc).__name__}); files found by walking the folder"
                errors.append(file_error(index, root, reason))
                continue
            for record in records:
                file_id = record.get("ReferencedFileID")
                if not file_id:
                    continue
                parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
                if _find_case_insensitive(Path(folder), parts) is None:
                    errors.append(file_error(Path(folder).joinpath(*parts), root, "listed in DICOMDIR but missing"))
    if errors:
        log.warning("%d DICOMDIR problem(s) under %s (see errors.csv)", len(errors), describe_path(root))
    return errors
