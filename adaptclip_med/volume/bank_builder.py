"""Building a reference bank: encode k normal scans once, calibrate on them, fingerprint their voxels.

Every body slice of every normal scan goes through the method once; its memory rows, global
embedding, relative body position and a thumbnail are written to ``scan_NN.safetensors``
(layout: :mod:`adaptclip_med.volume.bank.format`).  With two or more scans the bank is then
calibrated leave-one-scan-out (the pixel threshold for masks, the normal slice scores, and the
comparability guard's reference-distance bound) with the same encode -> match -> predict step as
study scoring (``volume/slice_step.py``).  Builds are atomic and one per bank name
(:mod:`adaptclip_med.volume.bank.build_slot`), every file stamped with the build id
(:mod:`adaptclip_med.volume.bank.integrity`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from adaptclip_med.version import __version__
from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.methods.base import RESERVED_ROW_NAMES, AnomalyMethod
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.volume.bank.build_slot import building_slot
from adaptclip_med.volume.bank.folders import bank_dir
from adaptclip_med.volume.bank.format import (
    BANK_FORMAT,
    BANK_JSON,
    BANK_VERSION,
    SOURCES_FORMAT,
    SOURCES_JSON,
    THUMBNAIL_SIZE,
    bank_key,
)
from adaptclip_med.volume.bank.integrity import BUILD_ID, file_stamp, manifest
from adaptclip_med.volume.bank.reader import DEFAULT_POLICY, ReferenceBank
from adaptclip_med.volume.coverage import body_extent_mm
from adaptclip_med.volume.distribution_check import calibrate_distribution
from adaptclip_med.volume.physical_grid import GridChoice, PhysicalGrid, grid_mapping, parse_grid, to_grid
from adaptclip_med.slice_preprocessing import PreparedVolume, SlicePreprocessing, prepare_volume
from adaptclip_med.volume.slice_step import predict_slices

log = logging.getLogger(__name__)

CALIBRATION_QUANTILE = 0.999
#: Float memory rows are stored in the method's ``bank_storage_dtype`` (float16 for the built-in
#: methods: half the disk and page cache of float32; the effect on AdaptCLIP's maps was measured,
#: benchmarks/matching.py, ``fp16_storage`` in results/matching.json).


def _encode_scan(method: AnomalyMethod, prepared: PreparedVolume, batch_size: int, label: str) -> dict[str, torch.Tensor]:
    rows = np.flatnonzero(~prepared.background)
    if rows.size == 0:
        raise InputError(f"{label}: every slice is background (air only); choose a scan that contains the body")
    chunks: dict[str, list[torch.Tensor]] = {}
    globals_: list[torch.Tensor] = []
    for start in progress_bar(range(0, rows.size, batch_size), desc=f"encoding {label}", total=-(-rows.size // batch_size)):
        batch = rows[start:start + batch_size]
        encoded = method.encode(method.slice_input(prepared.slices01[batch]))
        if method.references != "unused":
            for name, tensor in method.memory_rows(encoded).items():
                if name in RESERVED_ROW_NAMES:
                    raise AdaptClipError(f"method '{method.name}' names a memory row '{name}', which banks reserve")
                stored = tensor.to(method.bank_storage_dtype) if tensor.is_floating_point() else tensor
                chunks.setdefault(name, []).append(stored.cpu())
        embedding = method.global_embedding(encoded)
        if embedding is not None:
            globals_.append(F.normalize(embedding, dim=-1).float().cpu())
    thumbs = F.interpolate(torch.from_numpy(prepared.slices01[rows]).unsqueeze(1), size=(THUMBNAIL_SIZE, THUMBNAIL_SIZE),
                           mode="area").squeeze(1)
    tensors = {name: torch.cat(parts).contiguous() for name, parts in chunks.items()}
    if globals_:
        tensors["global"] = torch.cat(globals_).contiguous()
    tensors["thumbs"] = (thumbs.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    tensors["rows"] = torch.from_numpy(rows.astype(np.int64))
    tensors["relative_position"] = torch.from_numpy(prepared.relative_position[rows].astype(np.float64))
    return tensors


def build_reference_bank(name: str, scans: list[Path], method: AnomalyMethod, preprocessing: SlicePreprocessing,
                         out_root: Path, batch_size: int = 4, calibrate: bool = True,
                         calibration_slices: int = 12, grid: str | GridChoice | PhysicalGrid | None = "auto") -> Path:
    """Encode k normal scans into ``out_root/name`` (atomically: built in a temp folder, then renamed).

    The bank stores the method's memory rows for every body slice and is keyed by the method's
    identity.  For a method without a reference branch it stores positions and thumbnails only
    and still serves leave-one-scan-out threshold calibration.

    ``grid``: the physical in-plane grid every scan (and later every study) is resampled to
    before encoding (``volume/physical_grid.py``): 'auto' (the scans' median pixel size and
    field of view), 'off'/None (each scan at its own pixel size, the behaviour before grids), a
    ``--grid`` text or a :class:`PhysicalGrid`."""
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.utils.redact import describe_path

    if not scans:
        raise InputError("a reference bank needs at least one normal scan")
    out_root = Path(out_root)
    final = bank_dir(out_root, name)
    chosen_grid = resolve_bank_grid(grid, scans, preprocessing.axis)  # before anything is written
    key = bank_key(method, preprocessing, chosen_grid)
    entries = []
    sources = []
    calibration_inputs: list[tuple[np.ndarray, np.ndarray]] = []
    with building_slot(out_root, name, final) as slot:  # one build per name, a private staging folder
        staging = slot.staging
        for index, scan in enumerate(scans):
            shown = describe_path(Path(scan))
            volume, _ = load_study(Path(scan), axis=preprocessing.axis)
            prepared = prepare_volume(volume, preprocessing)
            if chosen_grid is not None:
                prepared = PreparedVolume(to_grid(grid_mapping(volume, chosen_grid), prepared.slices01, fill=0.0),
                                          prepared.background, prepared.relative_position)
            tensors = _encode_scan(method, prepared, batch_size, shown)
            # Folder names are often patient names: the bank records a pseudonymous label only.
            label = f"normal scan {index + 1}"
            file = f"scan_{index:02d}.safetensors"
            save_file(tensors, str(staging / file), metadata=file_stamp(slot.build_id, key))
            extent_mm, slice_spacing_mm = body_extent_mm(volume, prepared.background)
            entries.append({"label": label, "file": file, "num_slices": int(volume.array.shape[0]),
                            "body_slices": int(tensors["rows"].numel()), "modality": volume.modality,
                            "spacing_mm": [float(s) for s in volume.spacing], "body_extent_mm": extent_mm,
                            "slice_spacing_mm": slice_spacing_mm})
            sources.append({"file": file, "path": str(Path(scan).resolve()), "axis": preprocessing.axis,
                            "num_slices": int(volume.array.shape[0]), "fingerprint": voxel_fingerprint(volume.array)})
            rows = tensors["rows"].numpy()
            pick = rows[np.linspace(0, rows.size - 1, min(calibration_slices, rows.size)).round().astype(int)]
            calibration_inputs.append((prepared.slices01[pick], prepared.relative_position[pick]))
        meta: dict[str, Any] = {
            "format": BANK_FORMAT, "format_version": BANK_VERSION, "name": name, "key": key,
            "model": method.identity(), "preprocessing": preprocessing.describe(), "scans": entries,
            "grid": None if chosen_grid is None else chosen_grid.describe(),
            "software_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "calibration": None,
            BUILD_ID: slot.build_id, "manifest": manifest(staging, [entry["file"] for entry in entries]),
        }
        (staging / BANK_JSON).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        (staging / SOURCES_JSON).write_text(json.dumps({"format": SOURCES_FORMAT, "scans": sources}, indent=1))
        meta["comparability"] = {"distribution": None, "distribution_skipped": "one normal scan: nothing to leave out"}
        if len(scans) >= 2:
            bank = ReferenceBank.open(staging)
            if calibrate:
                meta["calibration"] = {**calibrate_bank(bank, method, calibration_inputs, batch_size),
                                       BUILD_ID: slot.build_id}
            distribution = calibrate_distribution(bank, method, DEFAULT_POLICY)
            meta["comparability"] = {"distribution": distribution, "distribution_skipped":
                                     None if distribution else f"method '{method.name}' has no features to compare"}
            bank.close()
        (staging / BANK_JSON).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    return final


def resolve_bank_grid(grid: str | GridChoice | PhysicalGrid | None, scans: list[Path], axis: str) -> PhysicalGrid | None:
    """The grid a bank is built on.  'auto' and a pixel size without a field of view read each
    scan's geometry first (one extra read per scan, before any encoding); scans without a
    physical pixel size (2-D images) make 'auto' fall back to no grid, with a warning."""
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.physical_grid import choose_grid, has_physical_spacing, in_plane_geometry

    if grid is None or isinstance(grid, PhysicalGrid):
        return grid
    choice = grid if isinstance(grid, GridChoice) else parse_grid(grid)
    if choice.mode == "off":
        return None
    if choice.mode == "given" and choice.fov_mm is not None:
        return choose_grid(choice, [])
    geometries = []
    for scan in progress_bar(scans, desc="reading the scans' pixel sizes"):
        volume, _ = load_study(Path(scan), axis=axis)
        if not has_physical_spacing(volume):
            if choice.mode == "auto":
                log.warning("a normal scan has no physical pixel size (2-D image): the bank gets no physical grid")
                return None
            raise InputError("--grid needs scans with a physical pixel size; a normal scan has none (2-D image)")
        geometries.append(in_plane_geometry(volume))
        del volume
    return choose_grid(choice, geometries)


def voxel_fingerprint(array: np.ndarray) -> str:
    """A short hash of a volume's voxels (float32, canonical order): tells the review viewer that
    the series at a recorded path is still the one the bank was built from."""
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    digest = hashlib.sha256(str(data.shape).encode())
    digest.update(data.tobytes())
    return digest.hexdigest()[:24]


def calibrate_bank(bank: ReferenceBank, method: AnomalyMethod, inputs: list[tuple[np.ndarray, np.ndarray]],
                   batch_size: int) -> dict[str, Any]:
    """Leave-one-scan-out: score sampled slices of each normal scan against the OTHER scans.

    The maps of normal anatomy give the pixel threshold (a high quantile) used for masks, and the
    normal slice scores give a reference distribution for reading study scores.  With k scans in
    the bank the calibration uses k-1 references per query, slightly pessimistic (documented).
    Uses the same encode -> match -> predict step as study scoring (``volume/slice_step.py``),
    with the default matching policy."""
    pixel_values: list[np.ndarray] = []
    pixel_max = float("-inf")
    slice_scores: list[float] = []
    for held_out, (slices01, rel) in enumerate(progress_bar(inputs, desc="calibrating on normal scans")):
        others = [i for i in range(len(bank.scans)) if i != held_out]
        for start in range(0, len(slices01), batch_size):
            pred, _ = predict_slices(method, slices01[start:start + batch_size], rel[start:start + batch_size], bank, others,
                                     DEFAULT_POLICY)
            pixel_values.append(pred.anomaly_map.flatten().cpu().numpy()[::7])
            pixel_max = max(pixel_max, float(pred.anomaly_map.max()))
            slice_scores.extend(pred.score.cpu().tolist())
    values = np.concatenate(pixel_values)
    scores = np.asarray(slice_scores)
    return {"method": "leave-one-scan-out", "pixel_quantile": CALIBRATION_QUANTILE,
            "pixel_threshold": float(np.quantile(values, CALIBRATION_QUANTILE)), "pixel_max": pixel_max,
            "normal_slice_score_mean": float(scores.mean()), "normal_slice_score_max": float(scores.max()),
            "normal_slice_score_p95": float(np.quantile(scores, 0.95)), "slices": int(scores.size)}
