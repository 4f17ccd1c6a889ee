"""What the browser viewer is sent, once per study: NIfTI volumes and the geometry to move through them.

The reading-room viewer (NiiVue in the browser, :mod:`adaptclip_med.dashboard.viewer`) scrolls,
windows and blends on the client, so the server sends the study volume, the anomaly map and the
mask outline once, as gzipped NIfTI (base64 in the component's arguments), plus the canonical
geometry: ``affine`` maps a canonical voxel (z, y, x) to scanner millimetres, which is how the
client turns "slice z" into NiiVue's crosshair position whatever the source orientation was.

Arrays are quantised for transfer (the map to uint8 with a 1/255 slope, the image to int16 with a
slope covering its range): a 300 x 512 x 512 CT travels as ~150 MB of int16 before gzip rather
than 300 MB of float32.  Nothing here imports Streamlit.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.outputs.thresholds import slice_score_threshold
from adaptclip_med.review.references import SAME_LEVEL, same_level_row
from adaptclip_med.review.rendering import Window
from adaptclip_med.outputs.layout import PROBABILITY_NIFTI
from adaptclip_med.review.study_data import ReviewStudy

#: NiiVue's 2-D views and the world axis (RAS index) each one looks along.
VIEW_WORLD_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
#: canonical (z, y, x) -> NIfTI (i, j, k) = (x, y, z): NIfTI stores the first index fastest.
_ZYX_TO_XYZ = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def canonical_affine(study: ReviewStudy) -> np.ndarray:
    """Canonical voxel (z, y, x, 1) -> scanner mm, from the source volume or the stored map."""
    if study.volume is not None:
        return study.volume.reorientation.canonical_affine(study.volume.source_affine)
    import nibabel as nib

    from adaptclip_med.io.geometry import plan_reorientation

    image = nib.load(str(Path(study.output_dir) / PROBABILITY_NIFTI))
    axis = ((study.report.get("scoring") or {}).get("preprocessing") or {}).get("axis", "axial")
    return plan_reorientation(image.affine, image.shape[:3], axis).canonical_affine(image.affine)


def nifti_base64(array_zyx: np.ndarray, affine_zyx: np.ndarray, kind: str = "image") -> str:
    """A canonical (Z, Y, X) array as base64 gzipped NIfTI.  ``kind``: "image" (int16 + slope),
    "map" (values in [0, 1] as uint8 / 255) or "mask" (uint8 0/1)."""
    import nibabel as nib

    data = np.asarray(array_zyx, dtype=np.float32)
    slope, inter = 1.0, 0.0
    if kind == "map":
        stored = np.clip(np.round(np.nan_to_num(data) * 255.0), 0, 255).astype(np.uint8)
        slope = 1.0 / 255.0
    elif kind == "mask":
        stored = (data > 0).astype(np.uint8)
    else:
        lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
        integral = np.allclose(data, np.round(data)) and -32768 <= lo and hi <= 32767
        if integral:
            stored = np.round(data).astype(np.int16)
        else:
            slope = max(hi - lo, 1e-6) / 65000.0
            inter = lo + 32500.0 * slope
            stored = np.clip(np.round((data - inter) / slope), -32768, 32767).astype(np.int16)
    image = nib.Nifti1Image(np.ascontiguousarray(stored.transpose(2, 1, 0)), affine_zyx @ _ZYX_TO_XYZ)
    image.header.set_xyzt_units("mm")
    image.header.set_slope_inter(slope, inter)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    raw = image.to_bytes()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=3, mtime=0) as handle:
        handle.write(raw)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a (Z, Y, X) mask, slice by slice (what the reader sees on each slice)."""
    from scipy.ndimage import binary_erosion

    mask = np.asarray(mask, dtype=bool)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # in-plane only
    return mask & ~binary_erosion(mask, structure=structure, border_value=0)


def view_axes(affine_zyx: np.ndarray) -> tuple[dict[str, int], int, list[int]]:
    """For each 2-D view the canonical axis it steps through, the view of the slicing axis (index
    into axial/coronal/sagittal) and each canonical axis's dominant world axis."""
    world = [int(np.argmax(np.abs(affine_zyx[:3, axis]))) for axis in range(3)]
    by_world = {w: axis for axis, w in enumerate(world)}
    axes = {view: by_world.get(w, index) for index, (view, w) in enumerate(VIEW_WORLD_AXIS.items())}
    slicing_view = ["axial", "coronal", "sagittal"].index(next(v for v, w in VIEW_WORLD_AXIS.items() if w == world[0]))
    return axes, slicing_view, world


@dataclass(frozen=True)
class ReferenceVolume:
    """The matched normal scan as a volume for the linked reference viewer: the source series when
    it could be reopened, else the bank's thumbnails stacked (``source`` says which)."""

    array: np.ndarray  # (R, H, W) float32, in the study's intensity units where possible
    affine: np.ndarray
    slices: list[int | None]  # study slice -> slice of ``array``, None for background
    recorded: list[bool]  # True where scoring used exactly this slice
    label: str
    source: bool = False  # True: full-resolution source series; False: 128-px bank thumbnails


def reference_volume(bank, scan: int, study: ReviewStudy, bank_name: str, series=None) -> ReferenceVolume | None:
    """Normal scan ``scan`` of the bank with, for every study slice, the reference slice the model
    compared it with (recorded at scoring; else the bank's position match, as scoring does).

    ``series`` (:class:`adaptclip_med.review.reference_source.ReferenceSeries`): the scan's source
    series reopened from the bank's ``sources.json``.  Without it, the bank's thumbnails (the
    bank window's [0, 1], mapped back to the study's units) are shown and the label says why."""
    if not 0 <= scan < len(bank.scans):
        return None
    rows = bank.scans[scan].rows
    if rows.size == 0:
        return None
    label = f"normal reference: bank '{bank_name}', scan {scan + 1}"
    if series is not None and series.volume is not None:
        volume = series.volume
        array = np.asarray(volume.array, dtype=np.float32)
        affine = volume.reorientation.canonical_affine(volume.source_affine)
        position = {int(src): int(src) for src in rows}
        label += "\nsource series (full resolution)"
        from_source = True
    else:
        array, affine = _thumbnail_stack(bank, scan, study)
        position = {int(src): index for index, src in enumerate(rows)}
        why = getattr(series, "reason", "") or "the source series was not looked up"
        label += f"\nbank thumbnails (128 px):\n{why}"
        from_source = False
    slices: list[int | None] = []
    recorded: list[bool] = []
    relative = study.relative_position
    for z in range(study.depth):
        row = same_level_row(bank, scan, study.matched.get(z, []), float(relative[z]))
        if row is not None and int(rows[row]) in position:
            slices.append(position[int(rows[row])])
            recorded.append(True)
        elif np.isfinite(relative[z]):
            (_, row), = bank.match(float(relative[z]), None, SAME_LEVEL, scans=[scan])
            slices.append(position[int(rows[row])])
            recorded.append(False)
        else:
            slices.append(None)
            recorded.append(False)
    return ReferenceVolume(array, affine, slices, recorded, label, from_source)


def _thumbnail_stack(bank, scan: int, study: ReviewStudy) -> tuple[np.ndarray, np.ndarray]:
    """The bank's thumbnails of ``scan`` (body slices only) as a volume in the study's units, with
    the study's orientation and field of view (the thumbnails carry no geometry of their own)."""
    rows = bank.scans[scan].rows
    stack = np.stack([np.asarray(bank.thumbnail(scan, r), dtype=np.float32) for r in range(rows.size)])
    scale = 255.0 if stack.max() > 1.5 else 1.0
    window = (bank.meta.get("preprocessing") or {}).get("window")
    level_width = _window_of(window)
    if level_width is not None:  # thumbnails hold the bank window's [0, 1]: map back to HU
        level, width = level_width
        stack = (level - width / 2) + stack / scale * width
    else:
        stack = stack / scale
    _, height, width_px = stack.shape
    zs, ys, xs = (float(s) for s in study.spacing)
    fov_y, fov_x = ys * study.probability.shape[1], xs * study.probability.shape[2]
    spacing = np.array([zs, fov_y / height, fov_x / width_px])
    affine = np.eye(4)
    affine[:3, :3] = _directions(canonical_affine(study)) * spacing
    return stack, affine


def _directions(affine: np.ndarray) -> np.ndarray:
    """Unit direction of each canonical axis (columns), from an affine."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    return columns / np.maximum(np.linalg.norm(columns, axis=0), 1e-9)


def _window_of(window: Any) -> tuple[float, float] | None:
    if isinstance(window, str):
        from adaptclip_med.intensity import CT_WINDOWS

        preset = CT_WINDOWS.get(window)
        if preset is None:
            return None
        return _level_width(preset)
    if isinstance(window, (list, tuple)) and len(window) == 2:
        return float(window[0]), float(window[1])
    if isinstance(window, dict) and {"level", "width"} <= set(window):
        return float(window["level"]), float(window["width"])
    return None


def _level_width(preset: Any) -> tuple[float, float] | None:
    if isinstance(preset, (tuple, list)) and len(preset) == 2:
        return float(preset[0]), float(preset[1])
    level, width = getattr(preset, "level", None), getattr(preset, "width", None)
    return (float(level), float(width)) if level is not None and width is not None else None


def heat_range(study: ReviewStudy, stretch: bool) -> tuple[float, float]:
    """Colour-bar range of the heat map: [0.15, 1] x (1 or the study maximum when stretched)."""
    top = study.peak if stretch and 0.0 < study.peak < 1.0 else 1.0
    return round(0.15 * top, 4), round(max(top, 1e-3), 4)


def payload_id(*parts: Any) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def study_payload(study: ReviewStudy, threshold: float, method: str = "") -> dict[str, Any]:
    """Everything about a study the viewer needs, except per-view state and the reference."""
    affine = canonical_affine(study)
    if study.volume is not None:
        base = study.volume.array
    else:
        base = np.zeros(study.probability.shape, dtype=np.float32)
    axes, slicing_view, world = view_axes(affine)
    outline = mask_outline(study.probability >= threshold)
    auto = study.auto_window
    spacing = study.spacing
    return {
        "study_id": payload_id(study.study_key, study.output_dir, method),
        "outline_id": payload_id(study.study_key, study.output_dir, method, round(threshold, 4)),
        "volumes": {"base": nifti_base64(base, affine, "image"), "map": nifti_base64(study.probability, affine, "map"),
                    "outline": nifti_base64(outline, affine, "mask")},
        "shape": [int(n) for n in study.probability.shape],
        "affine": affine.tolist(),
        "view_axes": axes, "slicing_view": slicing_view, "world_axis": world,
        "slice_scores": [None if not np.isfinite(s) else round(float(s), 5) for s in study.slice_scores],
        "top_slices": [int(z) for z in study.top_slices],
        "instances": list(study.instances) or [None] * study.depth,  # DICOM InstanceNumber per slice
        "units": "HU" if study.volume is not None and getattr(study.volume, "modality", "") == "CT" else "",
        "threshold": float(threshold),  # the pixel threshold of the outline (a map value)
        "slice_threshold": slice_score_threshold(((study.report.get("scoring") or {}).get("reference_bank") or {})
                                                 .get("calibration")),
        "fov_mm": float(max(spacing[1] * study.probability.shape[1], spacing[2] * study.probability.shape[2])),
        "wl_sensitivity": float(max(auto.width / 300.0, 1e-3)),
    }


def reference_payload(ref: ReferenceVolume, scan: int, bank_name: str) -> dict[str, Any]:
    return {"id": payload_id(bank_name, scan, len(ref.slices), ref.source), "scan": scan, "label": ref.label,
            "source": ref.source,
            "volume": nifti_base64(ref.array, ref.affine, "image"), "shape": [int(n) for n in ref.array.shape],
            "affine": ref.affine.tolist(), "slices": ref.slices, "recorded": ref.recorded}


def window_presets(options: dict[str, Window]) -> dict[str, list[float]]:
    return {name: [float(w.level), float(w.width)] for name, w in options.items()}
