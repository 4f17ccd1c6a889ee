"""Triage: score a coarse subset of a study's body slices first, then refine around what is hot.

Why: at ViT-L/14@518 on a CPU a slice costs ~12 s, so a 300-slice study scored exhaustively takes
an hour; a worklist only needs each study's score and where to look.  Triage scores every
``stride``-th body slice (and the last one, so both ends are covered), then repeatedly scores the
unscored immediate neighbours of every *hot* slice, until no unscored slice neighbours a hot one.
A slice is hot when it is among the ``top_k`` highest slice scores so far, or when its map reaches
the mask threshold anywhere (so every above-threshold region is followed until it goes cold).

What it cannot do (documented in docs/performance.md, measured in benchmarks/triage.py): a lesion
that lies entirely between two coarse slices and does not raise either of them to hot is never
seen.  The stride must therefore not exceed the thinnest lesion, in slices, that must be found.

Honesty of the outputs: an unscored slice has NO map.  The scorer leaves its probability at 0 and
records it as skipped with :data:`NOT_SCORED_REASON` (slices.csv, the score plot and study.json
list it as not scored; study.json counts them and names the triage settings); nothing is
interpolated, and the study score comes from scored slices only.

Method-agnostic: this module only sees slice positions, slice scores and map peaks through a
callback, so every registered method triages through the method contract unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptclip_med.errors import AdaptClipError

#: skip_reason of a body slice that triage did not score (slices.csv, study.json).
NOT_SCORED_REASON = "not scored (triage)"
#: Slices kept hot by rank: the refinement climbs to the study's highest-scoring slices even
#: where nothing reaches the threshold (normal studies, uncalibrated thresholds).
DEFAULT_TOP_K = 3

#: score_batch(positions) -> (slice scores, map peaks), one each per position, in order.
ScoreBatch = Callable[[list[int]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TriagePlan:
    """How triage runs: ``stride`` (score every stride-th body slice first) and ``top_k``."""

    stride: int
    top_k: int = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        if self.stride < 2:
            raise AdaptClipError(f"--triage {self.stride}: the stride must be at least 2 (1 would score every slice; "
                                 "omit --triage for that)")
        if self.top_k < 1:
            raise AdaptClipError(f"triage top_k {self.top_k} must be at least 1")

    def describe(self) -> dict[str, Any]:
        return {"stride": self.stride, "top_k": self.top_k}


@dataclass
class TriageRun:
    """What triage did on one study, in positions 0..count-1 of the body slices."""

    plan: TriagePlan
    count: int
    scores: np.ndarray  # float64 (count,), nan where not scored
    peaks: np.ndarray  # float64 (count,), nan where not scored
    rounds: list[int] = field(default_factory=list)  # slices scored per round (round 0 = coarse)

    @property
    def scored(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(self.scores))

    @property
    def unscored(self) -> np.ndarray:
        return np.flatnonzero(np.isnan(self.scores))

    def describe(self) -> dict[str, Any]:
        return {**self.plan.describe(), "body_slices": self.count, "scored": int(self.scored.size),
                "scored_fraction": round(self.scored.size / self.count, 4) if self.count else 0.0,
                "slices_per_round": list(self.rounds)}


def coarse_positions(count: int, stride: int) -> list[int]:
    """Every ``stride``-th position from 0, plus the last one (the far end is never left out)."""
    if count <= 0:
        return []
    picks = list(range(0, count, stride))
    if picks[-1] != count - 1:
        picks.append(count - 1)
    return picks


def hot_positions(scores: np.ndarray, peaks: np.ndarray, threshold: float, top_k: int) -> np.ndarray:
    """Scored positions that are among the ``top_k`` scores or whose map reaches ``threshold``."""
    scored = np.flatnonzero(~np.isnan(scores))
    if scored.size == 0:
        return scored
    ranked = scored[np.argsort(-scores[scored], kind="stable")][:top_k]
    above = scored[peaks[scored] >= threshold]
    return np.union1d(ranked, above)


def refine_positions(scores: np.ndarray, peaks: np.ndarray, threshold: float, top_k: int) -> list[int]:
    """The unscored immediate neighbours of the hot positions (sorted, no duplicates)."""
    count = scores.size
    wanted: set[int] = set()
    for position in hot_positions(scores, peaks, threshold, top_k):
        for neighbour in (position - 1, position + 1):
            if 0 <= neighbour < count and np.isnan(scores[neighbour]):
                wanted.add(int(neighbour))
    return sorted(wanted)


def run_triage(count: int, score_batch: ScoreBatch, plan: TriagePlan, threshold: float) -> TriageRun:
    """Score the coarse positions, then refine until no unscored position neighbours a hot one.

    Terminates: each round scores at least one new position, and there are ``count``."""
    run = TriageRun(plan, count, np.full(count, np.nan), np.full(count, np.nan))
    picks: Sequence[int] = coarse_positions(count, plan.stride)
    while picks:
        scores, peaks = score_batch(list(picks))
        if len(scores) != len(picks) or len(peaks) != len(picks):
            raise AdaptClipError(f"triage: {len(picks)} slices asked for, {len(scores)} scores returned")
        run.scores[list(picks)] = np.asarray(scores, dtype=np.float64)
        run.peaks[list(picks)] = np.asarray(peaks, dtype=np.float64)
        if np.isnan(run.scores[list(picks)]).any():
            raise AdaptClipError("triage: the method returned a NaN slice score; cannot tell scored from unscored")
        run.rounds.append(len(picks))
        picks = refine_positions(run.scores, run.peaks, threshold, plan.top_k)
    return run
