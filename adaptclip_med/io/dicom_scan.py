"""Find the image series in a pile of DICOM files, without reading pixel data.

Files are grouped by StudyInstanceUID -> SeriesInstanceUID from their headers, never by folder:
exports mix series in one folder and split one series across several.  Everything that cannot be
scored is kept in a ``skipped`` list with a reason, so the user can see why a file was ignored.
UIDs are only used as grouping keys and replaced by pseudonymous keys for anything shown.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_sanity import header_problem
from adaptclip_med.io.file_kinds import NotRegularFileError, open_regular
from adaptclip_med.io.dicom_headers import (
    DICOMDIR_SOP_CLASS,
    SECONDARY_CAPTURE_PREFIX,
    image_type,
    is_localizer,
    non_image_reason,
    number_of_frames,
    plane_of,
    series_frames,
)
from adaptclip_med.utils.ownership import OWNER_MARKER
from adaptclip_med.utils.redact import describe_path, pseudonymous_key

log = logging.getLogger(__name__)

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}


@dataclass
class SkippedFile:
    """A file left out of scoring and why (``label`` is safe to print; ``path`` is not shown)."""

    path: Path
    label: str
    reason: str


@dataclass
class SeriesInfo:
    """One series found by :func:`scan_dicom`.

    ``kind`` is ``"image"`` for series that can be loaded, ``"non-image"`` for series without a
    usable image (SR, presentation states, RT objects, or only truncated files...), and ``"unreadable"`` for the
    single pseudo-series collecting files that are not DICOM or cannot be parsed.  ``headers``
    (one per file in ``files``, pixel data not read) are kept for loading and for DICOM outputs;
    they hold identifiers and are excluded from ``repr``.
    """

    series_key: str
    study_key: str
    kind: str
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    num_slices: int = 0
    rows: int | None = None
    columns: int | None = None
    orientation: str = "unknown"
    slice_thickness: float | None = None
    body_part: str = ""
    is_localizer: bool = False
    is_derived: bool = False
    is_secondary_capture: bool = False
    is_multiframe: bool = False
    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    headers: list[Dataset] = field(default_factory=list, repr=False, compare=False)

    @property
    def label(self) -> str:
        """Short human description, free of identifiers."""
        number = f" #{self.series_number}" if self.series_number is not None else ""
        desc = f" '{self.description}'" if self.description else ""
        if self.kind != "image":
            what = "unreadable files" if self.kind == "unreadable" else f"series{number}{desc}"
            return f"{what}: no usable image ({len(self.skipped)} file(s) skipped)"
        flags = [f for f, on in (("localizer", self.is_localizer), ("derived", self.is_derived),
                                 ("secondary capture", self.is_secondary_capture)) if on]
        thickness = f", {self.slice_thickness:g} mm" if self.slice_thickness else ""
        extra = f", {', '.join(flags)}" if flags else ""
        return f"{self.modality} series{number}{desc}: {self.num_slices} slices, {self.orientation}{thickness}{extra}"

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (pseudonymous keys, redacted skip list)."""
        return {
            "series_key": self.series_key, "study_key": self.study_key, "kind": self.kind, "modality": self.modality,
            "description": self.description, "series_number": self.series_number, "num_slices": self.num_slices,
            "rows": self.rows, "columns": self.columns, "orientation": self.orientation,
            "slice_thickness": self.slice_thickness, "body_part": self.body_part, "is_localizer": self.is_localizer,
            "is_derived": self.is_derived, "is_secondary_capture": self.is_secondary_capture,
            "is_multiframe": self.is_multiframe,
            "skipped": [{"file": s.label, "reason": s.reason} for s in self.skipped],
        }


def all_skipped(series: Iterable[SeriesInfo]) -> list[SkippedFile]:
    return [skip for info in series for skip in info.skipped]


def unreadable_near(series: SeriesInfo, candidates: Iterable[SeriesInfo]) -> list[SkippedFile]:
    """Files in ``series``' folders that could not be read at all (no header, so no series): the
    likely cause when the series turns out to have a gap, e.g. one slice with a corrupt header."""
    folders = {path.parent for path in series.files}
    return [skip for info in candidates if info.kind == "unreadable" for skip in info.skipped
            if skip.path.parent in folders]


def is_input_folder(folder: Path, excluded: frozenset[str]) -> bool:
    """A sub-folder to walk: not hidden, not this program's output folder (it holds the owner
    marker, or it is an output folder the caller names), so outputs are never read as inputs."""
    if folder.name.startswith(".") or (folder / OWNER_MARKER).is_file():
        return False
    return not excluded or os.path.realpath(folder) not in excluded


def _iter_files(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> list[Path]:
    """Files under the given folders/files, sorted for reproducibility; hidden files and the
    DICOMDIR index are left out (DICOMDIR only lists files that the walk finds anyway), and so
    are output folders (see :func:`is_input_folder`)."""
    found: list[Path] = []
    excluded = frozenset(os.path.realpath(p) for p in exclude)
    for path in paths:
        if path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if is_input_folder(Path(folder) / d, excluded))
                found.extend(Path(folder) / n for n in sorted(names)
                             if not n.startswith(".") and n.upper() != "DICOMDIR")
        elif path.exists() or path.is_symlink():  # not only regular files: _read_header names the others
            if path.name.upper() != "DICOMDIR":
                found.append(path)
        else:
            raise InputError(f"{describe_path(path)}: no such file or folder")
    return found


def _pixel_problem(handle: Any, ds: Dataset, file_size: int) -> str | None:
    """After a stop-before-pixels read, check that complete pixel data follows in the file.

    Deflated datasets are compressed as a whole, so file offsets say nothing: they are checked
    when the pixels are decoded instead."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_deflated:
        return None
    start = handle.tell()
    head = handle.read(8)
    if len(head) < 8:
        return "no pixel data"
    little = getattr(ds, "is_little_endian", None)
    little = True if little is None else little
    group, element = struct.unpack("<HH" if little else ">HH", head[:4])
    if (group, element) not in _PIXEL_TAGS:
        return "no pixel data"
    if (group, element) != (0x7FE0, 0x0010) or (syntax is not None and syntax.is_compressed):
        return None
    explicit = syntax is None or not syntax.is_implicit_VR
    header_bytes = 12 if explicit else 8
    bits = int(ds.get("BitsAllocated", 16) or 16)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    pixels = int(ds.Rows) * int(ds.Columns) * samples * number_of_frames(ds)
    expected = (pixels * bits + 7) // 8
    if file_size - start < header_bytes + expected:
        return "truncated file (pixel data incomplete)"
    return None


def _read_header(path: Path) -> tuple[Dataset | None, str | None]:
    """Header of ``path`` (pixel data not read) or the reason it cannot be used."""
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                ds = pydicom.dcmread(handle, stop_before_pixels=True)
            except InvalidDicomError:
                handle.seek(0)
                ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
                if "SOPClassUID" not in ds or "SeriesInstanceUID" not in ds:
                    return None, "not a DICOM file"
            if str(ds.get("SOPClassUID", "")) == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
                return None, None
            if "SeriesInstanceUID" not in ds or "StudyInstanceUID" not in ds:
                return ds, "DICOM file without study/series identifiers"
            reason = non_image_reason(ds)
            if reason is None:
                reason = header_problem(path, ds, size)
            if reason is None:
                reason = _pixel_problem(handle, ds, size)
            return ds, reason
    except NotRegularFileError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot open ({exc.strerror or type(exc).__name__})"
    except Exception as exc:  # pydicom raises many types on malformed input
        return None, f"unreadable DICOM ({type(exc).__name__})"


def _series_key(ds: Dataset) -> tuple[str, str]:
    study = str(ds.get("StudyInstanceUID", ""))
    return pseudonymous_key("study", study), pseudonymous_key("series", study, str(ds.get("SeriesInstanceUID", "")))


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _new_series(ds: Dataset, study_key: str, series_key: str) -> SeriesInfo:
    try:
        number = int(ds.get("SeriesNumber")) if ds.get("SeriesNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    return SeriesInfo(series_key=series_key, study_key=study_key, kind="non-image", modality=_text(ds, "Modality"),
                      description=_text(ds, "SeriesDescription"), series_number=number,
                      body_part=_text(ds, "BodyPartExamined"))


def _finish(info: SeriesInfo) -> None:
    """Fill the image-level fields from the kept headers (first header for per-series facts)."""
    if not info.headers:
        return
    info.kind = "image"
    first = info.headers[0]
    frames = series_frames(info.files, info.headers)
    info.num_slices = len(frames)
    info.rows, info.columns = int(first.Rows), int(first.Columns)
    info.orientation = plane_of(frames[0].orientation)
    thickness = [f.slice_thickness for f in frames if f.slice_thickness]
    info.slice_thickness = float(np.median(thickness)) if thickness else None
    kinds = image_type(first)
    info.is_localizer = all(is_localizer(ds) for ds in info.headers)
    info.is_derived = bool(kinds) and kinds[0] == "DERIVED"
    info.is_secondary_capture = str(first.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX)
    info.is_multiframe = any(number_of_frames(ds) > 1 for ds in info.headers)


def scan_dicom(paths: Path | str | Sequence[Path | str], root: Path | str | None = None,
               exclude: Sequence[Path] = (), label_for: Callable[[Path], str] | None = None) -> list[SeriesInfo]:
    """Group DICOM files (folders are walked recursively) into series.

    Returns image series first (ordered by study, series number, key), then non-image series, then
    at most one ``"unreadable"`` pseudo-series.  Localizer images mixed into an image series are
    moved to its ``skipped`` list; a series made only of localizers is kept and flagged
    ``is_localizer`` so the default selection avoids it.  Duplicate SOP instances are skipped.
    ``root`` only affects how skipped files are labelled (``label_for`` replaces the labelling,
    e.g. batch's pseudonymous file keys); folders under ``exclude`` (and any folder holding this
    program's output marker) are not walked.
    """
    items = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    label_root = Path(root) if root is not None else (items[0] if len(items) == 1 and items[0].is_dir() else None)
    if label_for is None:
        def label_for(path: Path) -> str:
            return describe_path(path, label_root)
    series: dict[str, SeriesInfo] = {}
    localizers: dict[str, list[tuple[Path, Dataset]]] = {}
    seen_instances: set[str] = set()
    unreadable = SeriesInfo(series_key="unreadable", study_key="", kind="unreadable",
                            description="files that could not be read as DICOM")
    for path in _iter_files(items, exclude):
        label = label_for(path)
        ds, reason = _read_header(path)
        if ds is None:
            if reason is not None:
                unreadable.skipped.append(SkippedFile(path, label, reason))
            continue
        if "SeriesInstanceUID" not in ds or "StudyInstanceUID" not in ds:
            unreadable.skipped.append(SkippedFile(path, label, reason or "missing identifiers"))
            continue
        study_key, series_key = _series_key(ds)
        info = series.get(series_key) or series.setdefault(series_key, _new_series(ds, study_key, series_key))
        sop = str(ds.get("SOPInstanceUID", ""))
        if reason is None and sop and sop in seen_instances:
            reason = "duplicate of another file (same SOP instance)"
        if reason is None and is_localizer(ds):
            localizers.setdefault(series_key, []).append((path, ds))
            seen_instances.add(sop)
            continue
        if reason is not None:
            info.skipped.append(SkippedFile(path, label, reason))
            continue
        seen_instances.add(sop)
        info.files.append(path)
        info.headers.append(ds)
    for series_key, entries in localizers.items():
        info = series[series_key]
        if info.headers:
            info.skipped.extend(SkippedFile(p, label_for(p), "localizer/scout image")
                                for p, _ in entries)
        else:
            info.files = [p for p, _ in entries]
            info.headers = [ds for _, ds in entries]
    for info in series.values():
        _finish(info)
    ordered = sorted(series.values(), key=lambda s: (s.kind != "image", s.study_key,
                                                      s.series_number if s.series_number is not None else 1 << 30,
                                                      s.series_key))
    if unreadable.skipped:
        ordered.append(unreadable)
    for info in ordered:
        for skip in info.skipped:
            log.info("skipped %s: %s", skip.label, skip.reason)
    return ordered
