"""One entry point for every input a user may point at: a DICOM folder/file(s), NIfTI, or a 2-D image.

When a folder holds several image series, :func:`default_series` picks one by a simple rule that
users can predict, and all candidates are returned so the caller can list the alternatives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom import load_dicom_series
from adaptclip_med.io.dicom_scan import SeriesInfo, all_skipped, scan_dicom, unreadable_near
from adaptclip_med.io.file_kinds import require_regular_file
from adaptclip_med.io.geometry import check_axis
from adaptclip_med.io.image2d import load_image2d
from adaptclip_med.io.itk_image import ITK_SUFFIXES, is_itk_image, load_itk_image
from adaptclip_med.io.nifti import load_nifti
from adaptclip_med.io.volume import Volume
from adaptclip_med.preprocess import IMAGE_SUFFIXES
from adaptclip_med.utils.redact import describe_path

SeriesRule = str | int | Callable[[list[SeriesInfo]], SeriesInfo] | None
NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Single-file volumes (one study each): NIfTI and the ITK formats (MetaImage, NRRD).
VOLUME_FILE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def default_series(candidates: list[SeriesInfo]) -> SeriesInfo:
    """The series to score when the user did not choose: the one with the most slices among
    non-localizer, original (not derived, not secondary capture), axial series; ties go to the
    thinnest slices, then to the lowest series number.  When no series meets all conditions the
    'axial' and then the 'original' condition are dropped; localizers are used only as a last
    resort."""
    images = [s for s in candidates if s.kind == "image"]
    if not images:
        raise ValueError("no image series")

    def rank(s: SeriesInfo) -> tuple:
        return (-s.num_slices, s.slice_thickness if s.slice_thickness else float("inf"),
                s.series_number if s.series_number is not None else 1 << 30, s.series_key)

    not_localizer = [s for s in images if not s.is_localizer] or images
    original = [s for s in not_localizer if not s.is_derived and not s.is_secondary_capture]
    axial = [s for s in original if s.orientation == "axial"]
    pool = axial or original or not_localizer
    return min(pool, key=rank)


def _choose(candidates: list[SeriesInfo], rule: SeriesRule, label: str) -> SeriesInfo:
    images = [s for s in candidates if s.kind == "image"]
    if rule is None or rule == "default":
        return default_series(images)
    if callable(rule):
        return rule(images)
    if isinstance(rule, int) and not isinstance(rule, bool):
        if not 0 <= rule < len(images):
            raise InputError(f"{label}: series index {rule} is out of range (0..{len(images) - 1})")
        return images[rule]
    for series in images:
        if series.series_key == rule:
            return series
    keys = ", ".join(s.series_key for s in images)
    raise InputError(f"{label}: no image series with key '{rule}' (use one of: {keys})")


def _no_series_error(label: str, candidates: list[SeriesInfo], folder: Path | None) -> InputError:
    skipped = all_skipped(candidates)
    if folder is not None and not skipped and not any(True for _ in folder.rglob("*")):
        return InputError(f"{label}: the folder is empty")
    if folder is not None and any(_is_nifti(p) or is_itk_image(p) for p in folder.rglob("*")):
        return InputError(f"{label}: no DICOM image series; the folder holds NIfTI/MetaImage/NRRD files, pass one of them instead")
    reasons: dict[str, int] = {}
    for skip in skipped:
        reasons[skip.reason] = reasons.get(skip.reason, 0) + 1
    detail = "; ".join(f"{count} x {reason}" for reason, count in sorted(reasons.items())) or "no files"
    return InputError(f"{label}: no DICOM image series found ({detail})")


def _study_groups(images: list[SeriesInfo]) -> list[list[SeriesInfo]]:
    """Image series grouped by study, in scan order (what ``--study N`` indexes)."""
    groups: dict[str, list[SeriesInfo]] = {}
    for info in images:
        groups.setdefault(info.study_key, []).append(info)
    return list(groups.values())


def _series_text(info: SeriesInfo) -> str:
    number = f"#{info.series_number}" if info.series_number is not None else "#?"
    return f"{number} {info.modality or '?'} {info.num_slices} slice(s)"


def _listing(groups: list[list[SeriesInfo]]) -> str:
    return "; ".join(f"study {i}: {len(g)} series [" + ", ".join(f"{j}: {_series_text(s)}" for j, s in enumerate(g)) + "]"
                     for i, g in enumerate(groups))


def choose_series(candidates: list[SeriesInfo], series_rule: SeriesRule, label: str,
                  study: int | None = None) -> SeriesInfo:
    """The series to load.  Several studies are never chosen between silently: without ``study``
    (an index into the listed studies) the input is refused with a pseudonymous list.  Within the
    study an int ``series_rule`` indexes its image series; the default rule refuses when it would
    need the key tie-break between equally ranked series."""
    images = [s for s in candidates if s.kind == "image"]
    groups = _study_groups(images)
    if study is not None:
        if not 0 <= study < len(groups):
            raise InputError(f"{label}: study index {study} is out of range (0..{len(groups) - 1}; found {_listing(groups)})")
        images = groups[study]
    elif len(groups) > 1:
        raise InputError(f"{label}: the input holds {len(groups)} studies ({_listing(groups)}); "
                         "choose one with --study N (and --series N)")
    if (series_rule is None or series_rule == "default") and len(images) > 1:
        best = default_series(images)
        tied = [s for s in images if s is not best and s.kind == "image" and not s.is_localizer
                and (s.num_slices, s.slice_thickness, s.series_number, s.orientation, s.is_derived)
                == (best.num_slices, best.slice_thickness, best.series_number, best.orientation, best.is_derived)]
        if tied:
            raise InputError(f"{label}: {len(tied) + 1} series rank equally ({_listing([images])}); "
                             "choose one with --series N")
        return best
    return _choose(images, series_rule, label)


def load_dicom_study(paths: Path | Sequence[Path], series_rule: SeriesRule = None, axis: str = "axial",
                     label: str | None = None, study: int | None = None) -> tuple[Volume, list[SeriesInfo]]:
    """Scan DICOM folders/files, pick a series (see :func:`choose_series`) and load it."""
    items = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not items:
        raise InputError("no input files given")
    if label is None:
        first = describe_path(items[0])
        label = first if len(items) == 1 else f"{first} (+{len(items) - 1} files)"
    candidates = scan_dicom(items)
    if not any(s.kind == "image" for s in candidates):
        raise _no_series_error(label, candidates, items[0] if len(items) == 1 and items[0].is_dir() else None)
    chosen = choose_series(candidates, series_rule, label, study)
    volume = load_dicom_series(chosen, axis=axis, label=label, unreadable=unreadable_near(chosen, candidates))
    return volume, candidates


def load_study(path: str | Path | Sequence[str | Path], series_rule: SeriesRule = None, axis: str = "axial",
               modality: str | None = None, study: int | None = None) -> tuple[Volume, list[SeriesInfo]]:
    """Load a study from a DICOM folder, a list of DICOM files, a DICOM file, a NIfTI file, a
    MetaImage (.mha/.mhd) or NRRD (.nrrd/.nhdr) file or a PNG/JPEG/TIFF/BMP image.  Returns the
    volume and the DICOM series candidates (empty for non-DICOM inputs).

    ``series_rule``: None/'default' (see :func:`default_series`), a series key, an index into the
    image candidates, or a callable choosing from them.  ``axis``: 'axial', 'coronal' or
    'sagittal'.  ``modality`` overrides the guess for NIfTI/ITK inputs (ignored otherwise: DICOM says).
    ``study``: index of the study when the input holds several (required then)."""
    check_axis(axis)
    if not isinstance(path, (str, os.PathLike)):
        return load_dicom_study([Path(p) for p in path], series_rule, axis, study=study)
    path = Path(path)
    label = describe_path(path)
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{label}: no such file or folder")
    if path.is_dir():
        return load_dicom_study(path, series_rule, axis, study=study)
    require_regular_file(path, label)
    if _is_nifti(path):
        return load_nifti(path, axis=axis, modality=modality), []
    if is_itk_image(path):
        return load_itk_image(path, axis=axis, modality=modality), []
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return load_image2d(path, axis=axis), []
    return load_dicom_study(path, series_rule, axis, study=study)
