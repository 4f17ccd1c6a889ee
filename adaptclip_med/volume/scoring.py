"""Slice-wise scoring of a volume against a reference bank (or zero-shot).

Every body slice goes through the network in batches; for few-shot each slice gets its own
reference memory (the matched slices of every normal scan).  Maps are resized back to the
slice's own size and stacked into a volume in the study's slice geometry; air-only slices are
skipped and reported, not scored.  With a :class:`~adaptclip_med.volume.triage.TriagePlan` only
the slices triage picks are scored; the others are reported as not scored (no map, no score).

Study score = an aggregate of slice scores, by default the MAXIMUM (a lesion may be visible on
very few slices, and averaging would dilute it); ``topk:K`` averages the K highest instead, which
is more robust to a single noisy slice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch.nn.functional as F

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.slice_preprocessing import PreparedVolume, SlicePreprocessing, prepare_volume
from adaptclip_med.volume.bank.reader import DEFAULT_POLICY, MatchPolicy, ReferenceBank
from adaptclip_med.volume.options import DEFAULT_AGGREGATE
from adaptclip_med.volume.comparability import (
    SLICE_OUT_OF_DISTRIBUTION,
    SLICE_OUTSIDE,
    ModalityCheck,
    StudyComparability,
    check_modality,
)
from adaptclip_med.volume.guard import GuardRun
from adaptclip_med.volume.physical_grid import PhysicalGrid
from adaptclip_med.volume.scoring_grid import bank_grid_for_scoring, score_on_grid
from adaptclip_med.volume.slice_step import predict_and_measure
from adaptclip_med.volume.triage import NOT_SCORED_REASON, TriagePlan, run_triage

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
TOP_SLICES = 5


@dataclass
class SliceResult:
    index: int
    position_mm: float
    score: float  # nan when skipped
    skipped: bool
    skip_reason: str | None = None
    matched: list[tuple[int, int]] = field(default_factory=list)  # (bank scan, source slice index)
    #: "" (comparable or not assessed), "outside coverage" or "out of reference distribution"
    comparability: str = ""
    reference_distance: float = float("nan")  # the distribution check's statistic (nan: not measured)


@dataclass
class StudyResult:
    """Per-study result in the volume's slice geometry (Z, Y, X)."""

    probability: np.ndarray  # float32 (Z, Y, X); 0 on skipped slices
    mask: np.ndarray  # bool (Z, Y, X)
    slices: list[SliceResult]
    score: float
    aggregate: str
    top_slices: list[int]
    threshold: float
    threshold_source: str
    shots: int
    prepared: PreparedVolume
    #: None for full scoring; else what triage did (volume/triage.py: TriageRun.describe())
    triage: dict[str, Any] | None = None
    #: the comparability guard's verdict (volume/comparability.py); the SR and worklists read it
    comparability: StudyComparability | None = None
    #: None without a bank grid; else how the study was laid on it (volume/physical_grid.py)
    physical_grid: dict[str, Any] | None = None

    def scored(self) -> list[SliceResult]:
        return [s for s in self.slices if not s.skipped]

    def comparable_scored(self) -> list[SliceResult]:
        """Scored slices that count towards the study score (not out of reference distribution)."""
        return [s for s in self.slices if not s.skipped and s.comparability != SLICE_OUT_OF_DISTRIBUTION]


def aggregate_scores(scores: np.ndarray, method: str = DEFAULT_AGGREGATE) -> float:
    """Study score from slice scores: 'max' or 'topk:K' (mean of the K highest)."""
    if scores.size == 0:
        return float("nan")
    if method == "max":
        return float(scores.max())
    if method.startswith("topk:"):
        try:
            k = int(method.split(":", 1)[1])
        except ValueError as exc:
            raise AdaptClipError(f"aggregate '{method}': K must be an integer") from exc
        return float(np.sort(scores)[::-1][:max(1, k)].mean())
    raise AdaptClipError(f"aggregate '{method}' is not 'max' or 'topk:K'")


class VolumeScorer:
    """Scores volumes with one method and (optionally) one reference bank."""

    def __init__(self, method: AnomalyMethod, bank: ReferenceBank | None = None,
                 preprocessing: SlicePreprocessing | None = None, shots: int | None = None, batch_size: int = 4,
                 device: str = "cpu", threshold: float | None = None, aggregate: str = DEFAULT_AGGREGATE,
                 match: MatchPolicy = DEFAULT_POLICY,
                 triage: TriagePlan | None = None, allow_other_modality: bool = False,
                 expected_grid: "PhysicalGrid | str | None" = None) -> None:
        self.method = method
        self.allow_other_modality = allow_other_modality
        self.triage = triage
        self.bank = bank
        self.grid, self.grid_note = bank_grid_for_scoring(bank, method, expected_grid)
        if bank is not None:
            bank_pre = bank.preprocessing()
            if preprocessing is not None and preprocessing != bank_pre:
                raise AdaptClipError(
                    f"the study would be windowed as {preprocessing.describe()} but bank '{bank.name}' was built with "
                    f"{bank_pre.describe()}: use the bank's window or build a bank with this one")
            preprocessing = bank_pre
        self.match = match  # passed to every match call: the bank itself holds no matching state
        self.preprocessing = preprocessing or SlicePreprocessing()
        available = len(bank.scans) if bank is not None else 0
        if method.references == "unused":
            available = 0  # the bank serves calibration only: the method compares the query with text alone
            shots = None
        self.shots = available if shots is None else shots
        if self.shots > available:
            raise AdaptClipError(f"--shots {self.shots} but the reference bank has {available} scans")
        self.batch_size = batch_size
        self.device = device
        self.aggregate = aggregate
        aggregate_scores(np.zeros(1), aggregate)  # validate early
        self.threshold, self.threshold_source = self._resolve_threshold(threshold)

    def _resolve_threshold(self, threshold: float | None) -> tuple[float, str]:
        if threshold is not None:
            return float(threshold), "user"
        uses_bank = self.bank is not None and (self.shots > 0 or self.method.references == "unused")
        calibration = self.bank.calibration if uses_bank else None
        if calibration:
            return float(calibration["pixel_threshold"]), f"calibrated on bank '{self.bank.name}' ({calibration['method']})"
        return DEFAULT_THRESHOLD, "default"

    def score(self, volume) -> StudyResult:
        self.check_modality(volume)  # refuse before windowing: no window warning for a study that is refused
        prepared = prepare_volume(volume, self.preprocessing,
                                  window_bank=self.bank.name if self.bank is not None else None)
        return self.score_prepared(volume, prepared)

    def score_prepared(self, volume, prepared: PreparedVolume) -> StudyResult:
        """Score windowed slices; with a bank grid the slices are laid on it first and the maps
        brought back to the study's native grid (``volume/physical_grid.py``)."""
        if self.grid is None:
            return self._score_on_own_grid(volume, prepared)
        return score_on_grid(self._score_on_own_grid, volume, prepared, self.grid, self.threshold)

    def _score_on_own_grid(self, volume, prepared: PreparedVolume) -> StudyResult:
        depth, height, width = prepared.slices01.shape
        if not np.isfinite(prepared.slices01).all():
            raise InputError(f"{volume.source_label}: the image contains NaN or infinite values after windowing")
        modality = self.check_modality(volume)
        guard = GuardRun.start(self.bank, volume, prepared, modality)
        probability = np.zeros((depth, height, width), dtype=np.float32)
        positions = np.asarray(volume.positions, dtype=np.float64)
        slices = [SliceResult(z, float(positions[z]) if positions.size == depth else float(z), float("nan"),
                              bool(prepared.background[z]), "background (no body)" if prepared.background[z] else None)
                  for z in range(depth)]
        for z in guard.outside_slices():
            slices[z].skipped, slices[z].skip_reason, slices[z].comparability = True, guard.outside_reason(z), SLICE_OUTSIDE
        body = np.flatnonzero(~prepared.background & ~guard.outside)

        def score_batch(positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
            return self._score_slices(volume, prepared, body[positions], probability, slices, guard)

        triage_run = None
        if self.triage is None:
            score_batch(list(range(body.size)))
        elif body.size:
            triage_run = run_triage(int(body.size), score_batch, self.triage, self.threshold)
            for z in body[triage_run.unscored]:
                slices[z].skipped, slices[z].skip_reason = True, NOT_SCORED_REASON
        if not body.size and not guard.outside.any():
            raise InputError(f"{volume.source_label}: every slice is background (air only); nothing to score")
        comparability = guard.finish(slices, self.method.name)
        every = np.array([s.score for s in slices if not s.skipped], dtype=np.float64)
        counted = [s for s in slices if not s.skipped and s.comparability != SLICE_OUT_OF_DISTRIBUTION]
        comparability.score_all_slices = aggregate_scores(every, self.aggregate) if every.size else None
        shown = counted or [s for s in slices if not s.skipped]  # top slices still point a reader somewhere
        ranked = sorted(shown, key=lambda s: s.score, reverse=True)
        score = aggregate_scores(np.array([s.score for s in counted], dtype=np.float64), self.aggregate)
        mask = probability >= self.threshold
        mask[comparability.out_of_distribution] = False  # no finding where the comparison means nothing
        return StudyResult(
            probability=probability, mask=mask, slices=slices,
            score=score if comparability.comparable else float("nan"), aggregate=self.aggregate,
            top_slices=[s.index for s in ranked[:TOP_SLICES]], threshold=self.threshold,
            threshold_source=self.threshold_source, shots=self.shots if self.bank is not None else 0, prepared=prepared,
            triage=None if triage_run is None else triage_run.describe(), comparability=comparability)

    def check_modality(self, volume) -> ModalityCheck | None:
        """The study's modality against the bank's: refused in one line unless allowed
        (volume/comparability.py); None without a bank."""
        return check_modality(volume.modality, self.bank, self.allow_other_modality) if self.bank is not None else None

    def _score_slices(self, volume, prepared: PreparedVolume, index: np.ndarray, probability: np.ndarray,
                      slices: list[SliceResult], guard: GuardRun) -> tuple[np.ndarray, np.ndarray]:
        """Score the slices ``index`` (z) in batches into ``probability``/``slices``; returns their
        slice scores and map peaks (what triage decides on), in the order asked."""
        height, width = probability.shape[1:]
        scores = np.empty(index.size, dtype=np.float64)
        peaks = np.empty(index.size, dtype=np.float64)
        batches = range(0, index.size, self.batch_size)
        for start in progress_bar(batches, desc=f"scoring {volume.source_label}", total=len(batches), unit="batch"):
            chunk = index[start:start + self.batch_size]
            pred, matches, distances = predict_and_measure(self.method, prepared.slices01[chunk],
                                                           guard.relative_position[chunk], self.bank, range(self.shots),
                                                           self.match, measure=guard.measures)
            maps = F.interpolate(pred.anomaly_map.unsqueeze(1).float(), size=(height, width), mode="bilinear",
                                 align_corners=False).squeeze(1).cpu().numpy()
            for j, z in enumerate(chunk):
                probability[z] = maps[j]
                slices[z].score = float(pred.score[j])
                slices[z].matched = matches[j]
                slices[z].reference_distance = distances[j]
                scores[start + j] = slices[z].score
                peaks[start + j] = float(maps[j].max())
        return scores, peaks

    def references_note(self) -> str | None:
        """Said in study.json when a bank was given to a method that does not use references."""
        if self.bank is not None and self.method.references == "unused":
            return (f"method '{self.method.name}' is zero-shot: the bank '{self.bank.name}' was used for its calibrated "
                    "threshold only; each slice was scored from the query alone")
        return None

    def describe(self) -> dict[str, Any]:
        bank = None
        if self.bank is not None:
            bank = {"name": self.bank.name, "key": self.bank.meta.get("key"), "created": self.bank.meta.get("created"),
                    "scans": len(self.bank.scans),
                    "match": self.match.strategy, "slices_per_scan": self.match.per_scan,
                    "calibration": self.bank.calibration}
        return {"method": self.method.name, "model": self.method.identity(), "reference_bank": bank, "shots": self.shots,
                "references_note": self.references_note(),
                "physical_grid": None if self.grid is None else self.grid.describe(), "physical_grid_note": self.grid_note,
                "preprocessing": self.preprocessing.describe(), "aggregate": self.aggregate,
                "triage": None if self.triage is None else self.triage.describe(),
                "threshold": self.threshold, "threshold_source": self.threshold_source,
                "allow_other_modality": self.allow_other_modality}
