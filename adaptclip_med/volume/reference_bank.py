"""Reference banks: normal scans encoded once, stored on disk, matched slice by slice.

A bank folder holds ``bank.json`` (identity key, preprocessing, per-scan slice positions,
calibration) and one ``scan_NN.safetensors`` per normal scan with, for every body slice, the
tapped-layer patch features (L2-normalised, CLS dropped, float16), the normalised global token
(for retrieval matching) and a small thumbnail (for side-by-side review).

``sources.json`` records where each normal scan was read from (local path + a fingerprint of its
voxels), so the review viewer can show the full-resolution slice the model compared with.  It is
kept apart from ``bank.json`` because folder names are often patient names: it is never shown,
never logged, and deleting it makes the bank shareable (the viewer then falls back to thumbnails).

``bank.json`` also records what the comparability guard needs (docs/comparability.md): each
scan's modality and body extent along the slice axis in mm (its coverage), and under
``comparability.distribution`` the leave-one-scan-out bound of the per-slice reference distance
(``volume/distribution_check.py``).

Scoring never loads a whole bank: safetensors files are memory-mapped and only the rows of the
matched slices are read (with a small LRU cache), so memory stays bounded by
k scans x slices-per-scan x N x D per query slice, not by the bank size.

The key covers backbone identity + fingerprint, adapters, image size, tapped layers and
preprocessing; a bank whose key differs from the current model's is refused with a message
telling the user to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from adaptclip_med import __version__
from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.methods.base import RESERVED_ROW_NAMES, AnomalyMethod
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.volume.bank_building import building_slot
from adaptclip_med.volume.bank_integrity import BUILD_ID, check_consistency, file_stamp, manifest
from adaptclip_med.volume.coverage import body_extent_mm
from adaptclip_med.volume.distribution_check import calibrate_distribution
from adaptclip_med.volume.physical_grid import GridChoice, PhysicalGrid, grid_mapping, parse_grid, to_grid
from adaptclip_med.volume.preprocessing import PreparedVolume, SlicePreprocessing, prepare_volume

log = logging.getLogger(__name__)

BANK_FORMAT = "adaptclip-med/reference-bank"
#: 2: keyed by the method identity (method contract); rows are the method's memory rows.
BANK_VERSION = 2
THUMBNAIL_SIZE = 128
SOURCES_JSON = "sources.json"
SOURCES_FORMAT = "adaptclip-med/reference-bank-sources"
MATCH_STRATEGIES = ("position", "retrieval")
DEFAULT_MATCH = "position"
DEFAULT_SLICES_PER_SCAN = 3
CALIBRATION_QUANTILE = 0.999
#: Matched bank rows kept decoded (LRU).  Position matching sweeps the study in order, so the
#: working set is about 2 x (batch + slices per scan) x k rows (~56 for batch 4, k = 4); a ViT-L
#: row is 16.8 MB in fp32, so 64 rows cap the cache near 1.1 GB.  256 rows put a 300-slice, k = 4
#: ViT-L study at ~10.8 GiB peak, 64 rows at ~7.0 GiB, and was faster (docs/performance.md, Memory).
_ROW_CACHE = 64
#: Float memory rows are stored in the method's ``bank_storage_dtype`` (float16 for the built-in
#: methods: half the disk and page cache of float32; the effect on AdaptCLIP's maps was measured,
#: benchmarks/matching.py, ``fp16_storage`` in results/matching.json).


def bank_key(method: AnomalyMethod | dict[str, Any], preprocessing: SlicePreprocessing | dict[str, Any],
             grid: PhysicalGrid | None = None) -> str:
    """Everything that changes the stored features or the calibration, hashed (the physical grid
    only when there is one, so keys of banks without a grid are unchanged)."""
    identity = method if isinstance(method, dict) else method.identity()
    described = preprocessing if isinstance(preprocessing, dict) else preprocessing.describe()
    payload: dict[str, Any] = {"model": identity, "preprocessing": described, "format": BANK_VERSION}
    if grid is not None:
        payload["grid"] = grid.describe()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _flatten(record: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(record, dict):
        flat: dict[str, Any] = {}
        for key, value in record.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: record}


#: The flag that sets an identity field, for the refusal message.
_FIELD_FLAGS = {"method": "--method", "image_size": "--image-size", "class_name": "--class-name",
                "weights": "--adapters", "backbone.architecture": "--backbone", "backbone.weights": "--backbone-weights",
                "backbone.activation": "--backbone-activation", "precision": "--precision"}


def identity_differences(bank_identity: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two method identities, most decisive first, e.g.
    ``image_size 224 (bank) vs 518 (now): pass --image-size 224``."""
    ours, theirs = _flatten(json.loads(json.dumps(current, default=str))), _flatten(json.loads(json.dumps(bank_identity, default=str)))
    order = ["method", *[k for k in _FIELD_FLAGS if k != "method"]]
    keys = sorted(set(ours) | set(theirs), key=lambda k: (order.index(k) if k in order else len(order), k))
    lines = []
    for key in keys:
        if key.endswith("provenance") or ".provenance" in key or key.startswith("weights_provenance"):
            continue
        if ours.get(key) != theirs.get(key):
            flag = _FIELD_FLAGS.get(key)
            if flag and theirs.get(key) is not None:
                hint = f": pass {flag} {theirs.get(key)}"
            elif flag:
                hint = f": drop {flag} or build the bank with it"
            else:
                hint = ""
            lines.append(f"{key} {_short(theirs.get(key))} (bank) vs {_short(ours.get(key))} (now){hint}")
    return lines


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class BankScan:
    label: str
    file: str
    num_slices: int
    rows: np.ndarray  # source slice index of each stored (body) row
    relative_position: np.ndarray  # per stored row, 0..1 along the body extent


# ------------------------------------------------------------------------------------- building
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
    final = _bank_dir(out_root, name)
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
        (staging / "bank.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        (staging / SOURCES_JSON).write_text(json.dumps({"format": SOURCES_FORMAT, "scans": sources}, indent=1))
        meta["comparability"] = {"distribution": None, "distribution_skipped": "one normal scan: nothing to leave out"}
        if len(scans) >= 2:
            bank = ReferenceBank.open(staging)
            if calibrate:
                meta["calibration"] = {**calibrate_bank(bank, method, calibration_inputs, batch_size),
                                       BUILD_ID: slot.build_id}
            distribution = calibrate_distribution(bank, method)
            meta["comparability"] = {"distribution": distribution, "distribution_skipped":
                                     None if distribution else f"method '{method.name}' has no features to compare"}
            bank.close()
        (staging / "bank.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
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


def calibrate_bank(bank: "ReferenceBank", method: AnomalyMethod, inputs: list[tuple[np.ndarray, np.ndarray]],
                   batch_size: int) -> dict[str, Any]:
    """Leave-one-scan-out: score sampled slices of each normal scan against the OTHER scans.

    The maps of normal anatomy give the pixel threshold (a high quantile) used for masks, and the
    normal slice scores give a reference distribution for reading study scores.  With k scans in
    the bank the calibration uses k-1 references per query, slightly pessimistic (documented).
    Uses the same encode -> match -> predict step as study scoring (``volume/slice_step.py``)."""
    from adaptclip_med.volume.slice_step import predict_slices

    pixel_values: list[np.ndarray] = []
    pixel_max = float("-inf")
    slice_scores: list[float] = []
    for held_out, (slices01, rel) in enumerate(progress_bar(inputs, desc="calibrating on normal scans")):
        others = [i for i in range(len(bank.scans)) if i != held_out]
        for start in range(0, len(slices01), batch_size):
            pred, _ = predict_slices(method, slices01[start:start + batch_size], rel[start:start + batch_size], bank, others)
            pixel_values.append(pred.anomaly_map.flatten().cpu().numpy()[::7])
            pixel_max = max(pixel_max, float(pred.anomaly_map.max()))
            slice_scores.extend(pred.score.cpu().tolist())
    values = np.concatenate(pixel_values)
    scores = np.asarray(slice_scores)
    return {"method": "leave-one-scan-out", "pixel_quantile": CALIBRATION_QUANTILE,
            "pixel_threshold": float(np.quantile(values, CALIBRATION_QUANTILE)), "pixel_max": pixel_max,
            "normal_slice_score_mean": float(scores.mean()), "normal_slice_score_max": float(scores.max()),
            "normal_slice_score_p95": float(np.quantile(scores, 0.95)), "slices": int(scores.size)}


# ------------------------------------------------------------------------------------- using
class ReferenceBank:
    """An opened bank: metadata in memory, features memory-mapped and read row by row."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta
        self._handles: dict[int, Any] = {}
        self._rows: OrderedDict[tuple[int, int], list[torch.Tensor]] = OrderedDict()
        self.scans: list[BankScan] = []
        self._globals: list[torch.Tensor] = []
        check_consistency(root, meta, lambda: {entry["file"]: self._handle(i, entry["file"]).metadata()
                                               for i, entry in enumerate(meta["scans"])})
        for index, entry in enumerate(meta["scans"]):
            handle = self._handle(index, entry["file"])
            self.scans.append(BankScan(entry["label"], entry["file"], entry["num_slices"],
                                       handle.get_tensor("rows").numpy(), handle.get_tensor("relative_position").numpy()))
            self._globals.append(handle.get_tensor("global") if "global" in handle.keys() else None)
        self.match_strategy = DEFAULT_MATCH
        self.slices_per_scan = DEFAULT_SLICES_PER_SCAN

    @classmethod
    def open(cls, path: Path, expected_identity: dict[str, Any] | None = None) -> "ReferenceBank":
        path = Path(path)
        meta_file = path / "bank.json"
        if not meta_file.is_file():
            raise InputError(f"{path.name}: not a reference bank (no bank.json); build one with 'adaptclip-med references build'")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != BANK_FORMAT or meta.get("format_version", 0) > BANK_VERSION:
            raise InputError(f"{path.name}: unsupported reference bank format; rebuild it with this version")
        _check_grid_identity(path, meta)
        if expected_identity is not None:
            differences = identity_differences(meta.get("model") or {}, expected_identity)
            if differences:
                raise AdaptClipError(
                    f"reference bank '{meta.get('name')}' was built with other model settings: {'; '.join(differences[:3])} "
                    "(or rebuild it with 'adaptclip-med references build' using the current settings)")
        return cls(path, meta)

    @property
    def grid(self) -> PhysicalGrid | None:
        """The physical in-plane grid studies are compared on (None: a bank without one)."""
        return PhysicalGrid.from_record(self.meta.get("grid"))

    @staticmethod
    def recorded_identity(path: Path) -> dict[str, Any]:
        """The method identity a bank folder records (empty if it is not a readable bank)."""
        try:
            return dict(json.loads((Path(path) / "bank.json").read_text()).get("model") or {})
        except (OSError, ValueError):
            return {}

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.meta.get("calibration")

    def preprocessing(self) -> SlicePreprocessing:
        pre = self.meta["preprocessing"]
        window = pre.get("window")
        return SlicePreprocessing(window=tuple(window) if isinstance(window, list) else window, axis=pre.get("axis", "axial"))

    def _handle(self, index: int, file: str):
        if index not in self._handles:
            try:
                self._handles[index] = safe_open(str(self.root / file), framework="pt")
            except Exception as exc:  # safetensors raises its own error type for a damaged file
                raise InputError(f"reference bank '{self.meta.get('name')}': {file} is unreadable "
                                 f"({type(exc).__name__}); rebuild it with 'adaptclip-med references build'") from exc
        return self._handles[index]

    def close(self) -> None:
        self._handles.clear()
        self._rows.clear()

    def match(self, query_relative: float, query_global: torch.Tensor | None, scans: Iterable[int] | None = None,
              strategy: str | None = None, per_scan: int | None = None) -> list[tuple[int, int]]:
        """Matched (scan index, stored row) pairs for one query slice: ``per_scan`` rows from every scan.

        position: the rows whose relative body position is nearest to the query's;
        retrieval: the rows whose global embedding is most similar to the query's."""
        strategy = strategy or self.match_strategy
        per_scan = per_scan or self.slices_per_scan
        if strategy not in MATCH_STRATEGIES:
            raise AdaptClipError(f"matching '{strategy}' is not one of {', '.join(MATCH_STRATEGIES)}")
        chosen: list[tuple[int, int]] = []
        for index in (range(len(self.scans)) if scans is None else scans):
            scan = self.scans[index]
            count = min(per_scan, scan.rows.size)
            if strategy == "retrieval" and query_global is not None and self._globals[index] is not None:
                sims = self._globals[index] @ F.normalize(query_global.float().cpu(), dim=-1)
                rows = torch.topk(sims, count).indices.sort().values.tolist()
            else:
                target = 0.5 if np.isnan(query_relative) else query_relative
                rows = np.sort(np.argsort(np.abs(scan.relative_position - target), kind="stable")[:count]).tolist()
            chosen.extend((index, int(r)) for r in rows)
        return chosen

    def _row(self, scan: int, row: int) -> dict[str, torch.Tensor]:
        key = (scan, row)
        cached = self._rows.get(key)
        if cached is not None:
            self._rows.move_to_end(key)
            return cached
        handle = self._handle(scan, self.scans[scan].file)
        names = [k for k in handle.keys() if k not in RESERVED_ROW_NAMES]
        features = {name: _as_float(handle.get_slice(name)[row:row + 1]) for name in names}
        self._rows[key] = features
        if len(self._rows) > _ROW_CACHE:
            self._rows.popitem(last=False)
        return features

    def rows(self, matches: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        """The stored memory rows of the matched slices (one dict per slice, each tensor (1, ...)),
        for the method's ``memory_from_rows``."""
        return [self._row(scan, row) for scan, row in matches]

    def source_record(self, scan: int) -> dict[str, Any] | None:
        """Where normal scan ``scan`` was read from (``sources.json``: path, axis, slice count,
        voxel fingerprint), None for banks built without it or after it was removed for sharing."""
        try:
            records = json.loads((self.root / SOURCES_JSON).read_text()).get("scans") or []
        except (OSError, ValueError, AttributeError):
            return None
        file = self.scans[scan].file if 0 <= scan < len(self.scans) else None
        return next((r for r in records if isinstance(r, dict) and r.get("file") == file and r.get("path")), None)

    def global_row(self, scan: int, row: int) -> torch.Tensor | None:
        """The stored global embedding of one slice, (1, D) float32 (None when the method has none)."""
        stored = self._globals[scan]
        return None if stored is None else stored[row:row + 1].float()

    def thumbnails(self, scan: int) -> np.ndarray:
        """Every stored thumbnail of one scan, (rows, 128, 128) uint8 (coverage alignment)."""
        return self._handle(scan, self.scans[scan].file).get_tensor("thumbs").numpy()

    def thumbnail(self, scan: int, row: int) -> np.ndarray:
        return self._handle(scan, self.scans[scan].file).get_slice("thumbs")[row:row + 1][0].numpy()

    def source_slice(self, scan: int, row: int) -> int:
        return int(self.scans[scan].rows[row])


def _check_grid_identity(path: Path, meta: dict[str, Any]) -> None:
    """A bank recording a physical grid must record the key computed with that grid: a grid
    edited in (or out of) ``bank.json`` after the build would compare studies on a grid the
    references were not encoded on, so such a bank is refused."""
    grid = PhysicalGrid.from_record(meta.get("grid"))
    if grid is None or not meta.get("key") or not isinstance(meta.get("model"), dict):
        return
    if bank_key(meta["model"], meta.get("preprocessing") or {}, grid) != meta["key"]:
        raise InputError(f"{path.name}: the bank's physical grid ({grid.text()}) does not match its identity key "
                         "(bank.json was edited?); rebuild it with 'adaptclip-med references build'")


def _as_float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() else tensor


def _bank_dir(root: Path, name: str) -> Path:
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise InputError(f"bank name '{name}' must be a plain folder name")
    return Path(root) / name


def rename_bank(root: Path, old: str, new: str) -> Path:
    """Rename the folder and the recorded name (atomically rewriting bank.json)."""
    from adaptclip_med.utils.atomic import atomic_write_text

    source, target = _bank_dir(root, old), _bank_dir(root, new)
    if not (source / "bank.json").is_file():
        raise InputError(f"no reference bank named '{old}' under {root}")
    if target.exists():
        raise InputError(f"a reference bank named '{new}' already exists")
    source.rename(target)
    meta = json.loads((target / "bank.json").read_text())
    meta["name"] = new
    atomic_write_text(target / "bank.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
    return target


def delete_bank(root: Path, name: str) -> None:
    folder = _bank_dir(root, name)
    if not (folder / "bank.json").is_file():
        raise InputError(f"no reference bank named '{name}' under {root}")
    shutil.rmtree(folder)
