"""The matched normal slice shown beside the study slice, from the bank's stored thumbnails.

Scoring records which reference slices each study slice was compared with; when that record is
not available for a slice (results read back from disk keep it for the top slices only), the
bank's own position matching is asked again, which is what scoring does by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptclip_med.review.study_data import ReviewStudy
from adaptclip_med.volume.bank_listing import list_banks
from adaptclip_med.volume.reference_bank import ReferenceBank


@dataclass(frozen=True)
class MatchedSlice:
    thumbnail: np.ndarray  # uint8 (H, W)
    scan: int
    source_slice: int
    recorded: bool  # True: the slice scoring used; False: nearest by body position

    def caption(self, bank_name: str) -> str:
        how = "used by the model" if self.recorded else "nearest by body position"
        return f"normal reference: bank '{bank_name}', scan {self.scan + 1}, slice {self.source_slice + 1} ({how})"


def find_bank(banks_root: Path, name: str | None) -> Path | None:
    if not name or not Path(banks_root).is_dir():
        return None
    return next((Path(b["path"]) for b in list_banks(Path(banks_root)) if b["name"] == name), None)


def same_level_row(bank: ReferenceBank, scan: int, recorded: list[tuple[int, int]], relative: float) -> int | None:
    """The stored row of ``scan``, among the slices scoring compared study slice ``z`` with
    (``recorded``: (bank scan, source slice) pairs), whose body position is nearest to the study
    slice's (``relative``): the same-level slice.

    Scoring compares each slice with several neighbouring reference slices, listed in source order;
    the first of them lies below the study slice, so showing it puts the comparison one slice off.
    None when scoring recorded no slice of this scan."""
    stored = bank.scans[scan]
    rows = [int(r) for s, src in recorded if s == scan for r in np.flatnonzero(stored.rows == src)[:1]]
    if not rows:
        return None
    target = 0.5 if not np.isfinite(relative) else float(relative)
    return min(rows, key=lambda r: (abs(float(stored.relative_position[r]) - target), r))


def matched_slice(bank: ReferenceBank, study: ReviewStudy, z: int, scan: int = 0) -> MatchedSlice | None:
    """The reference slice of bank scan ``scan`` matched to study slice ``z`` (None for background slices)."""
    if not 0 <= scan < len(bank.scans):
        return None
    relative = float(study.relative_position[z])
    row = same_level_row(bank, scan, study.matched.get(z, []), relative)
    if row is not None:
        return MatchedSlice(bank.thumbnail(scan, row), scan, bank.source_slice(scan, row), True)
    if not np.isfinite(relative):
        return None
    (_, row), = bank.match(relative, None, scans=[scan], strategy="position", per_scan=1)
    return MatchedSlice(bank.thumbnail(scan, row), scan, bank.source_slice(scan, row), False)
