"""Anatomical coverage: which query slices lie inside the body-axis range the bank's scans cover.

Scoring matches slices by RELATIVE body position (0 = first body slice, 1 = last), which is right
when the study spans the same anatomy as the normal scans (measured best, docs/volumes.md), but
says nothing about coverage: every study maps onto 0..1, so a study that continues 6 cm below
the bank's scans has its lowest slices matched to the bank's end slice.  Coverage is therefore
PHYSICAL: each bank scan records its body extent along the slice axis in mm (first to last body
slice), and the bank's coverage is ``[0, E]`` with E the median of those extents.

A study is placed in that frame by a 1-D alignment: every query body slice is described by its
windowed image at 32 x 32 (the bank keeps a thumbnail of each stored slice, so old banks work
too, and every method gets the same answer), and the alignment is the shift (in mm) along the
axis whose matched bank slices (by position, nearest per scan) look most alike on average
(mean absolute difference), over shifts that overlap at least half of the shorter extent.  Then:

* the study spans the bank's extent range (within ``tolerance``) and its best shift is within
  ``tolerance`` of zero (or no better than the relative placement): relative matching as
  before, every slice in coverage;
* otherwise each slice gets its aligned position; slices more than ``tolerance`` outside
  ``[0, E]`` are "not comparable" (no map), the others are matched at the aligned position.

``tolerance`` = max(1.5 slice spacings, 10 % of E): patients differ in size, and the scans of one
bank differ among themselves by about that much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from adaptclip_med.slice_preprocessing import PreparedVolume
    from adaptclip_med.volume.bank.reader import ReferenceBank

DESCRIPTOR_SIZE = 32
TOLERANCE_FRACTION = 0.10
TOLERANCE_SLICES = 1.5
MIN_OVERLAP = 0.5
#: the relative placement is kept unless the best shift is clearly better (5 % lower cost)
RELATIVE_SLACK = 1.05
#: at most this many shifts are tried (half-slice steps, coarser for very long studies)
MAX_SHIFTS = 600


def body_extent_mm(volume: Any, background: np.ndarray) -> tuple[float, float]:
    """(body extent along the slice axis in mm, slice spacing in mm) of one volume."""
    offsets = slice_offsets_mm(volume)
    body = np.flatnonzero(~np.asarray(background, dtype=bool))
    extent = float(abs(offsets[body[-1]] - offsets[body[0]])) if body.size else 0.0
    return extent, _spacing(volume)


def _spacing(volume: Any) -> float:
    return float(abs(volume.spacing[0])) or 1.0


def slice_offsets_mm(volume: Any) -> np.ndarray:
    """Each slice's position along the slice axis in mm (from the volume's positions when they
    are per slice, else index x spacing)."""
    depth = int(volume.array.shape[0])
    positions = np.asarray(getattr(volume, "positions", []), dtype=np.float64)
    if positions.size == depth and np.isfinite(positions).all():
        return np.abs(positions - positions[0])
    return np.arange(depth, dtype=np.float64) * _spacing(volume)


@dataclass(frozen=True)
class BankCoverage:
    """The bank's body-axis coverage, from ``bank.json``."""

    extents_mm: tuple[float, ...]
    slice_spacing_mm: float

    @property
    def extent_mm(self) -> float:
        return float(np.median(self.extents_mm))

    @property
    def tolerance_mm(self) -> float:
        return max(TOLERANCE_SLICES * self.slice_spacing_mm, TOLERANCE_FRACTION * self.extent_mm)

    def describe(self) -> dict[str, Any]:
        return {"extent_mm": round(self.extent_mm, 2), "scan_extents_mm": [round(e, 2) for e in self.extents_mm],
                "tolerance_mm": round(self.tolerance_mm, 2)}


def bank_coverage(bank: "ReferenceBank") -> BankCoverage | None:
    """Coverage from each scan's recorded ``body_extent_mm``, or, for banks built before it was
    recorded, from the stored body rows and the recorded slice spacing; None without either."""
    extents, spacings = [], []
    for entry, scan in zip(bank.meta.get("scans") or [], bank.scans):
        spacing = entry.get("slice_spacing_mm") or (entry.get("spacing_mm") or [None])[0]
        extent = entry.get("body_extent_mm")
        if extent is None and spacing and scan.rows.size:
            extent = float(scan.rows[-1] - scan.rows[0]) * float(spacing)
        if extent is None or not spacing:
            return None
        extents.append(float(extent))
        spacings.append(float(spacing))
    if not extents:
        return None
    return BankCoverage(tuple(extents), float(np.median(spacings)))


@dataclass
class CoveragePlan:
    """Where each query slice sits in the bank's frame."""

    relative_position: np.ndarray  # (Z,) position used for matching (nan: background or outside)
    outside: np.ndarray  # (Z,) bool: body slice outside the coverage
    aligned_mm: np.ndarray  # (Z,) aligned position in the bank's frame (nan for background)
    placement: str  # "relative" or "aligned"
    shift_mm: float
    coverage: BankCoverage

    def describe(self) -> dict[str, Any]:
        return {**self.coverage.describe(), "placement": self.placement, "shift_mm": round(self.shift_mm, 2),
                "slices_outside": int(self.outside.sum())}

    def reason(self, z: int) -> str:
        where = "below" if self.aligned_mm[z] < 0 else "above"
        return (f"not comparable: outside the reference bank's body-axis coverage ({where} it, at "
                f"{self.aligned_mm[z]:.0f} mm of 0-{self.coverage.extent_mm:.0f} mm)")


def _descriptors(slices01: np.ndarray) -> torch.Tensor:
    images = torch.from_numpy(np.asarray(slices01, dtype=np.float32)).unsqueeze(1)
    return F.adaptive_avg_pool2d(images, DESCRIPTOR_SIZE).flatten(1)


def _bank_descriptors(bank: "ReferenceBank") -> list[torch.Tensor]:
    cached = getattr(bank, "_coverage_descriptors", None)
    if cached is None:
        cached = [_descriptors(bank.thumbnails(index).astype(np.float32) / 255.0) for index in range(len(bank.scans))]
        bank._coverage_descriptors = cached  # type: ignore[attr-defined]
    return cached


def _pair_costs(query: torch.Tensor, described: list[torch.Tensor]) -> list[np.ndarray]:
    """Per bank scan, the (query slices x stored slices) mean absolute difference of descriptors,
    computed once so that trying a shift is only a lookup."""
    return [(torch.cdist(query, descriptors, p=1) / query.shape[1]).numpy() for descriptors in described]


def _placement_cost(relative: np.ndarray, bank: "ReferenceBank", costs: list[np.ndarray]) -> float:
    """Mean over the slices placed inside 0..1 of the smallest difference to the nearest-position
    slice of any bank scan."""
    inside = np.flatnonzero((relative >= 0) & (relative <= 1))
    if inside.size == 0:
        return float("inf")
    best = np.full(inside.size, np.inf)
    for scan, pair in zip(bank.scans, costs):
        nearest = np.abs(scan.relative_position[None, :] - relative[inside, None]).argmin(axis=1)
        best = np.minimum(best, pair[inside, nearest])
    return float(best.mean())


def plan_coverage(bank: "ReferenceBank", volume: Any, prepared: "PreparedVolume") -> CoveragePlan | None:
    """The coverage plan of a study against a bank (None when the bank records no coverage)."""
    coverage = bank_coverage(bank)
    if coverage is None:
        return None
    depth = prepared.slices01.shape[0]
    body = np.flatnonzero(~prepared.background)
    offsets = slice_offsets_mm(volume)
    query_mm = offsets[body] - offsets[body[0]] if body.size else np.zeros(0)
    query_extent = float(query_mm[-1]) if body.size else 0.0
    extent, tolerance = coverage.extent_mm, coverage.tolerance_mm
    relative = np.asarray(prepared.relative_position, dtype=np.float64).copy()
    plan = CoveragePlan(relative, np.zeros(depth, dtype=bool), np.full(depth, np.nan), "relative", 0.0, coverage)
    if body.size == 0:
        return plan
    plan.aligned_mm[body] = relative[body] * extent
    costs = _pair_costs(_descriptors(prepared.slices01[body]), _bank_descriptors(bank))
    relative_cost = _placement_cost(relative[body], bank, costs)
    step = max(min(_spacing(volume), coverage.slice_spacing_mm) / 2.0, 0.5, (query_extent + extent) / MAX_SHIFTS)
    overlap_needed = MIN_OVERLAP * min(query_extent, extent)
    best_cost, best_shift = float("inf"), 0.0
    for shift in np.arange(-query_extent, extent + step, step):
        overlap = min(extent, shift + query_extent) - max(0.0, shift)
        if overlap + 1e-6 < overlap_needed:
            continue
        cost = _placement_cost((query_mm + shift) / max(extent, 1e-6), bank, costs)
        if cost < best_cost - 1e-9 or (abs(cost - best_cost) <= 1e-9 and abs(shift) < abs(best_shift)):
            best_cost, best_shift = cost, float(shift)
    lowest, highest = min(coverage.extents_mm) - tolerance, max(coverage.extents_mm) + tolerance
    same_span = lowest <= query_extent <= highest
    if same_span and (abs(best_shift) <= tolerance or relative_cost <= RELATIVE_SLACK * best_cost):
        return plan
    aligned = query_mm + best_shift
    plan.placement, plan.shift_mm = "aligned", best_shift
    plan.aligned_mm[body] = aligned
    outside = (aligned < -tolerance) | (aligned > extent + tolerance)
    plan.outside[body[outside]] = True
    placed = np.clip(aligned / max(extent, 1e-6), 0.0, 1.0)
    plan.relative_position[body] = np.where(outside, np.nan, placed)
    return plan
