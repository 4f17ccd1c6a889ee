"""Scoring on a bank's physical grid: the study's windowed slices go onto the grid, the maps come back.

Kept apart from :mod:`adaptclip_med.volume.scoring` so the slice loop stays one path: the scorer
scores whatever slices it is given; this module decides which grid they are on and brings the
result back to the study's native grid, where every output is written.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

import numpy as np

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.slice_preprocessing import PreparedVolume
from adaptclip_med.volume.comparability import StudyComparability, with_field_of_view
from adaptclip_med.volume.physical_grid import (
    NO_GRID_NOTE,
    PhysicalGrid,
    grid_coverage,
    grid_mapping,
    has_physical_spacing,
    in_plane_geometry,
    to_grid,
    to_native,
)

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod
    from adaptclip_med.volume.bank.reader import ReferenceBank

log = logging.getLogger(__name__)

_NOTED: set[str] = set()


def bank_grid_for_scoring(bank: "ReferenceBank | None", method: "AnomalyMethod",
                          expected: PhysicalGrid | str | None = None) -> tuple[PhysicalGrid | None, str | None]:
    """(the grid studies are scored on, a one-line note for banks without one).

    ``expected``: a grid (or 'off') the caller requires; a bank recording another one is
    refused, so a study is never compared on a grid other than the one its references were
    encoded on."""
    if bank is None:
        return None, None
    grid = bank.grid
    if expected is not None:
        wanted = None if expected == "off" else expected
        if wanted != grid:
            have = grid.text() if grid is not None else "no physical grid"
            want = wanted.text() if isinstance(wanted, PhysicalGrid) else "no physical grid"
            raise AdaptClipError(f"reference bank '{bank.name}' was built with {have} but {want} was asked for: "
                                 "use the bank as built or rebuild it with 'adaptclip-med references build --grid'")
    if grid is not None or method.references == "unused":
        return grid, None
    note = NO_GRID_NOTE.format(name=bank.name)
    if bank.name not in _NOTED:  # once per bank and process: batch runs score many studies
        _NOTED.add(bank.name)
        log.warning(note)
    return None, note


class GridScoredResult(Protocol):
    """What :func:`score_on_grid` reads of the scorer's per-study result (``volume/scoring.py``'s
    ``StudyResult``, a dataclass it copies with :func:`dataclasses.replace`); named by shape so
    this module, which the scorer imports, does not import the scorer back."""

    probability: np.ndarray
    score: float
    comparability: StudyComparability | None


Result = TypeVar("Result", bound=GridScoredResult)
ScoreSlices = Callable[[Any, PreparedVolume], Result]


def score_on_grid(score: ScoreSlices[Result], volume: Any, prepared: PreparedVolume, grid: PhysicalGrid,
                  threshold: float) -> Result:
    """Lay the windowed slices on ``grid`` (linear; outside the study's field of view: 0, the
    window's floor), score them with ``score`` and bring the probability map back to the study's
    native grid (linear), where the mask is thresholded.  Slice indices, positions and
    background flags do not change (the grid shares the study's slice planes)."""
    native = in_plane_geometry(volume)
    if not has_physical_spacing(volume):
        result = score(volume, prepared)
        return dataclasses.replace(result, physical_grid={
            "grid": grid.describe(), "resampled": False,
            "note": "the study has no physical pixel size (2-D image or missing spacing): compared at its own size"})
    mapping = grid_mapping(volume, grid)
    on_grid = PreparedVolume(to_grid(mapping, prepared.slices01, fill=0.0), prepared.background, prepared.relative_position)
    result = score(volume, on_grid)
    probability = np.clip(to_native(mapping, result.probability, fill=0.0), 0.0, None).astype(np.float32)
    coverage = grid_coverage(volume, grid)
    verdict, score = result.comparability, result.score
    if verdict is not None and not coverage.covers:
        verdict = with_field_of_view(verdict, coverage.fraction, coverage.reason or "")
        score = score if verdict.comparable else float("nan")
    record = {"grid": grid.describe(), "resampled": not mapping.identity,
              "study_pixel_mm": [round(s, 6) for s in native.spacing], "study_shape": list(native.shape),
              "scale": round(grid.pixel_mm / native.pixel_mm, 6), "coverage": coverage.describe()}
    mask = probability >= threshold
    if result.comparability is not None:  # slices the guard set aside add nothing to the mask on this grid either
        mask[result.comparability.out_of_distribution] = False
    return dataclasses.replace(result, probability=probability, mask=mask, prepared=prepared,
                               physical_grid=record, comparability=verdict, score=score)
