"""Reading a reference bank: open it (refusing a foreign, edited or inconsistent one), match
query slices to its stored slices, read the matched rows.

The on-disk layout is described in :mod:`adaptclip_med.volume.bank.format`; building is
:mod:`adaptclip_med.volume.bank_builder`.

Scoring never loads a whole bank: safetensors files are memory-mapped and only the rows of the
matched slices are read (with a small LRU cache), so memory stays bounded by
k scans x slices-per-scan x N x D per query slice, not by the bank size.

How a query slice picks its reference slices (:class:`MatchPolicy`) belongs to the caller and is
passed to every :meth:`ReferenceBank.match`: an opened bank holds no matching state, so one bank
can serve scorers with different policies.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.methods.base import RESERVED_ROW_NAMES
from adaptclip_med.methods.identity import identity_differences
from adaptclip_med.volume.bank.format import BANK_FORMAT, BANK_JSON, BANK_VERSION, SOURCES_JSON, bank_key
from adaptclip_med.volume.bank.integrity import check_consistency
from adaptclip_med.volume.physical_grid import PhysicalGrid
from adaptclip_med.slice_preprocessing import SlicePreprocessing

MATCH_STRATEGIES = ("position", "retrieval")
DEFAULT_MATCH = "position"
DEFAULT_SLICES_PER_SCAN = 3
#: Matched bank rows kept decoded (LRU).  Position matching sweeps the study in order, so the
#: working set is about 2 x (batch + slices per scan) x k rows (~56 for batch 4, k = 4); a ViT-L
#: row is 16.8 MB in fp32, so 64 rows cap the cache near 1.1 GB.  256 rows put a 300-slice, k = 4
#: ViT-L study at ~10.8 GiB peak, 64 rows at ~7.0 GiB, and was faster (docs/performance.md, Memory).
_ROW_CACHE = 64


@dataclass(frozen=True)
class MatchPolicy:
    """How a query slice picks its reference slices: ``strategy`` 'position' (the rows whose
    relative body position is nearest) or 'retrieval' (the rows whose global embedding is most
    similar), ``per_scan`` rows from every bank scan (``--match``, ``--slices-per-scan``)."""

    strategy: str = DEFAULT_MATCH
    per_scan: int = DEFAULT_SLICES_PER_SCAN

    @classmethod
    def from_options(cls, strategy: str | None, per_scan: int | None) -> "MatchPolicy":
        """The policy asked for, each part left unset (None, or 0 slices) at its default."""
        return cls(strategy or DEFAULT_MATCH, per_scan or DEFAULT_SLICES_PER_SCAN)


#: What scoring uses unless told otherwise, and what bank calibration uses.
DEFAULT_POLICY = MatchPolicy()


@dataclass
class BankScan:
    label: str
    file: str
    num_slices: int
    rows: np.ndarray  # source slice index of each stored (body) row
    relative_position: np.ndarray  # per stored row, 0..1 along the body extent


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

    @classmethod
    def open(cls, path: Path, expected_identity: dict[str, Any] | None = None) -> "ReferenceBank":
        path = Path(path)
        meta_file = path / BANK_JSON
        if not meta_file.is_file():
            raise InputError(f"{path.name}: not a reference bank (no bank.json); build one with 'adaptclip-med references build'")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != BANK_FORMAT or meta.get("format_version", 0) > BANK_VERSION:
            raise InputError(f"{path.name}: unsupported reference bank format; rebuild it with this version")
        _check_grid_identity(path, meta)
        bank = cls(path, meta)
        if expected_identity is not None:
            bank.check_identity(expected_identity)
        return bank

    def check_identity(self, expected_identity: dict[str, Any]) -> None:
        """Refuse (one line naming the differing fields and the flags that match the bank) a model
        other than the one this bank was built with."""
        differences = identity_differences(self.meta.get("model") or {}, expected_identity)
        if differences:
            raise AdaptClipError(
                f"reference bank '{self.meta.get('name')}' was built with other model settings: {'; '.join(differences[:3])} "
                "(or rebuild it with 'adaptclip-med references build' using the current settings)")

    @property
    def grid(self) -> PhysicalGrid | None:
        """The physical in-plane grid studies are compared on (None: a bank without one)."""
        return PhysicalGrid.from_record(self.meta.get("grid"))

    @staticmethod
    def recorded_identity(path: Path) -> dict[str, Any]:
        """The method identity a bank folder records (empty if it is not a readable bank)."""
        try:
            return dict(json.loads((Path(path) / BANK_JSON).read_text()).get("model") or {})
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

    def match(self, query_relative: float, query_global: torch.Tensor | None, policy: MatchPolicy,
              scans: Iterable[int] | None = None) -> list[tuple[int, int]]:
        """Matched (scan index, stored row) pairs for one query slice: ``policy.per_scan`` rows from
        every scan (all scans, or those in ``scans``), chosen by ``policy.strategy``.

        position: the rows whose relative body position is nearest to the query's;
        retrieval: the rows whose global embedding is most similar to the query's (position when
        the query or the scan has no global embedding)."""
        strategy, per_scan = policy.strategy, policy.per_scan
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
