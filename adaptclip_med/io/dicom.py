"""Loading one DICOM series into a :class:`Volume` (scanning lives in :mod:`.dicom_scan`).

Slices are ordered by projecting ImagePositionPatient on the slice normal (the cross product of
the ImageOrientationPatient cosines); InstanceNumber is only used when a series carries no
geometry.  The source layout is ``(slice, row, column)`` in that order, with an affine built from
the positions, so results can be written back as NIfTI or DICOM SEG in the acquired geometry.

Documented handling of awkward series:

* a single slice is accepted (2-D studies); its slice spacing is SpacingBetweenSlices, else
  SliceThickness, else 1 mm;
* slices with different sizes or orientations, several slices at one position (echoes, phases,
  time points) and gaps deviating more than 10 % from the median spacing raise :class:`InputError`;
* MONOCHROME1 images (bright = low values) are negated so that bright means dense, as in
  MONOCHROME2; ``meta['inverted_monochrome1']`` records it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pydicom

from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_headers import FrameHeader, image_type, series_frames
from adaptclip_med.io.dicom_pixels import decode_grey_frames
from adaptclip_med.io.dicom_scan import SeriesInfo, SkippedFile
from adaptclip_med.io.file_kinds import NotRegularFileError, open_regular
from adaptclip_med.io.geometry import check_axis
from adaptclip_med.io.limits import decoded_size_problem
from adaptclip_med.io.volume import SliceSource, Volume, volume_from_source
from adaptclip_med.utils.redact import describe_path

__all__ = ["load_dicom_series"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SPACING_TOLERANCE = 0.10


def _common_folder(paths: list[Path]) -> Path:
    folders = {p.parent for p in paths}
    if len(folders) == 1:
        return folders.pop()
    parts = zip(*(f.parts for f in folders), strict=False)  # folders differ in depth
    common = [group[0] for group in parts if len(set(group)) == 1]
    return Path(*common) if common else Path(".")


def _check_uniform(frames: list[FrameHeader], label: str) -> None:
    sizes = Counter((f.rows, f.columns) for f in frames)
    if len(sizes) > 1:
        shown = ", ".join(f"{r}x{c}" for r, c in sizes)
        raise InputError(f"{label}: the series mixes image sizes ({shown}); export one size per series")


def _skipped_cause(skipped: list | None, whose: str = "of the series could not be used") -> str:
    """Files of the series left out by the scan (truncated, unreadable): the likely cause of a gap."""
    broken = [skip for skip in (skipped or []) if "localizer" not in skip.reason and "duplicate" not in skip.reason]
    if not broken:
        return ""
    shown = "; ".join(f"{skip.label}: {skip.reason}" for skip in broken[:3])
    more = f" (+{len(broken) - 3} more)" if len(broken) > 3 else ""
    return f" because {len(broken)} file(s) {whose} ({shown}{more})"


def _sort_frames(frames: list[FrameHeader], label: str, skipped: list | None = None,
                 unreadable: list | None = None) -> tuple[list[FrameHeader], np.ndarray | None]:
    """Frames in ascending position along the slice normal, and that normal (None without geometry).

    A gap is blamed on the series' own skipped files first, then on unreadable files beside it."""
    with_geometry = all(f.orientation is not None and f.position is not None for f in frames)
    if not with_geometry:
        order = sorted(range(len(frames)), key=lambda i: (frames[i].instance_number is None,
                                                          frames[i].instance_number or 0,
                                                          str(frames[i].path), frames[i].frame_number or 0))
        return [frames[i] for i in order], None
    first = frames[0].orientation
    assert first is not None
    if any(not np.allclose(f.orientation, first, atol=1e-3) for f in frames):  # type: ignore[arg-type]
        raise InputError(f"{label}: slices have different orientations (several stacks or a localizer in one series)")
    normal = np.cross(first[:3], first[3:])
    positions = np.array([float(np.dot(f.position, normal)) for f in frames])  # type: ignore[arg-type]
    order = np.argsort(positions, kind="stable")
    sorted_positions = positions[order]
    if len(frames) > 1:
        gaps = np.diff(sorted_positions)
        duplicates = int(np.sum(gaps < 1e-3))
        if duplicates:
            raise InputError(f"{label}: {duplicates + 1} slices share a position (several echoes, phases or time "
                             f"points in one series); split the series before scoring")
        median = float(np.median(gaps))
        if np.max(np.abs(gaps - median)) > _SPACING_TOLERANCE * median:
            cause = _skipped_cause(skipped) or _skipped_cause(unreadable, "beside the series could not be read")
            if cause:
                raise InputError(f"{label}: slices are missing from the series{cause}; re-export the series")
            raise InputError(f"{label}: slice spacing is not uniform ({gaps.min():.3g} to {gaps.max():.3g} mm); "
                             f"missing or overlapping slices?")
    return [frames[i] for i in order], normal


def _source_affine(frames: list[FrameHeader], normal: np.ndarray | None) -> tuple[np.ndarray, str]:
    """RAS affine of the (slice, row, column) source array, and how the geometry was obtained."""
    first = frames[0]
    spacing = first.pixel_spacing if first.pixel_spacing is not None else np.array([1.0, 1.0])
    through = first.spacing_between_slices or first.slice_thickness or 1.0
    if normal is None:
        row_dir, col_dir, normal = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
        origin = np.zeros(3)
        step = normal * through
        how = "assumed (no position/orientation in the headers)"
    else:
        assert first.orientation is not None and first.position is not None
        row_dir, col_dir = first.orientation[:3], first.orientation[3:]
        origin = first.position
        if len(frames) > 1:
            step = (frames[-1].position - first.position) / (len(frames) - 1)  # type: ignore[operator]
        else:
            step = normal * through
        how = "headers"
    lps = np.eye(4)
    lps[:3, 0] = step
    lps[:3, 1] = col_dir * spacing[0]  # moving down one row follows the column direction cosine
    lps[:3, 2] = row_dir * spacing[1]  # moving right one column follows the row direction cosine
    lps[:3, 3] = origin
    if first.pixel_spacing is None:
        how += "; pixel spacing assumed 1 mm"
    return _LPS_TO_RAS @ lps, how


def _read_pixels(series: SeriesInfo, frames: list[FrameHeader], label: str) -> tuple[np.ndarray, bool]:
    """Rescaled float32 (slice, row, column) array in ``frames`` order; each file decoded once."""
    shape = (len(frames), frames[0].rows, frames[0].columns)
    too_large = decoded_size_problem(shape, "pixels in the series")
    if too_large is not None:
        raise InputError(f"{label}: {too_large}")
    out = np.empty(shape, dtype=np.float32)
    by_file: dict[int, list[int]] = {}
    for slot, frame in enumerate(frames):
        by_file.setdefault(frame.header_index, []).append(slot)
    inverted = False
    for header_index, slots in by_file.items():
        path = series.files[header_index]
        file_label = describe_path(path)
        try:
            with open_regular(path) as handle:
                ds = pydicom.dcmread(handle)  # not deferred: every element is read while the file is open
        except NotRegularFileError as exc:
            raise InputError(f"{file_label}: {exc}") from exc
        except Exception as exc:
            raise InputError(f"{file_label}: cannot read the DICOM file ({type(exc).__name__})") from exc
        pixels = decode_grey_frames(ds, file_label)
        if pixels.shape[1:] != out.shape[1:]:
            raise InputError(f"{file_label}: pixel data is {pixels.shape[1]}x{pixels.shape[2]} but the header says "
                             f"{out.shape[1]}x{out.shape[2]}")
        monochrome1 = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
        inverted |= monochrome1
        for slot in slots:
            frame = frames[slot]
            index = (frame.frame_number or 1) - 1
            if index >= pixels.shape[0]:
                raise InputError(f"{file_label}: frame {index + 1} is missing from the pixel data")
            values = pixels[index] * np.float32(frame.slope) + np.float32(frame.intercept)
            out[slot] = -values if monochrome1 else values
    return out, inverted


def load_dicom_series(series: SeriesInfo, axis: str = "axial", label: str | None = None,
                      unreadable: list[SkippedFile] | None = None) -> Volume:
    """Read the pixels of an image series found by :func:`scan_dicom` into a :class:`Volume`.

    ``label`` names the study in messages (default: the series' common folder, redacted).
    ``unreadable``: files near the series that could not be read at all (see
    :func:`~adaptclip_med.io.dicom_scan.unreadable_near`), named as the cause of a gap."""
    check_axis(axis)
    if label is None:
        label = describe_path(_common_folder(series.files)) if series.files else "DICOM series"
    if series.kind != "image" or not series.files:
        raise InputError(f"{label}: {series.label} has no image to load")
    frames = series_frames(series.files, series.headers)
    _check_uniform(frames, label)
    frames, normal = _sort_frames(frames, label, series.skipped, unreadable)
    affine, geometry = _source_affine(frames, normal)
    source, inverted = _read_pixels(series, frames, label)
    first = series.headers[0]
    syntax = getattr(getattr(first, "file_meta", None), "TransferSyntaxUID", None)
    meta = {
        "series_key": series.series_key, "study_key": series.study_key, "series_description": series.description,
        "series_number": series.series_number, "body_part": series.body_part, "rows": series.rows,
        "columns": series.columns, "num_slices": len(frames), "acquisition_plane": series.orientation,
        "slice_thickness": series.slice_thickness, "image_type": image_type(first),
        "rescale_slopes": sorted({f.slope for f in frames}),
        "rescale_intercepts": sorted({f.intercept for f in frames}),
        "rescale_type": str(first.get("RescaleType", "") or ""), "multiframe": series.is_multiframe,
        "transfer_syntax": syntax.name if syntax is not None else "", "geometry": geometry,
        "inverted_monochrome1": inverted, "skipped_files": len(series.skipped),
    }
    header_order = list(dict.fromkeys(f.header_index for f in frames))
    sop_uids = [str(ds.get("SOPInstanceUID", "")) or None for ds in series.headers]
    sources = [SliceSource(path=f.path, sop_instance_uid=sop_uids[f.header_index], frame_number=f.frame_number)
               for f in frames]
    return volume_from_source(source, affine, axis, modality=series.modality or "OT", source_kind="dicom",
                              source_label=label, meta=meta, sources=sources,
                              source_datasets_header=[series.headers[i] for i in header_order])
