"""What the study writers know about the scoring: plain, typed records instead of the scorer.

The study run (:mod:`adaptclip_med.volume.study_run`) builds ONE :class:`ScoringRecord` per study
from its scorer and hands it to the writers, so the writers never reach back into the scorer, the
method or the bank: they read the method identity (Contributing Equipment's Device UID), the
threshold and its source, the bank identity and calibration (study.json's ``thresholds``), and
describe the run in study.json and the SR's algorithm parameters.  The scored result itself is read
through :class:`ScoredStudy`, the part of a study result the writers use (typed here because the
outputs layer sits below the volume layer that defines the full result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class BankRecord:
    """The reference bank a study was compared with: its identity and calibration."""

    name: str
    key: str | None
    created: str | None
    scans: int
    match: str | None
    slices_per_scan: int | None
    calibration: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        """study.json's ``scoring.reference_bank`` (key order kept: the SR lists it as written)."""
        return {"name": self.name, "key": self.key, "created": self.created, "scans": self.scans,
                "match": self.match, "slices_per_scan": self.slices_per_scan, "calibration": self.calibration}


@dataclass(frozen=True)
class ScoringRecord:
    """How one study was scored: method, bank, threshold, preprocessing (study.json's ``scoring``)."""

    display_name: str  # the method's display name (DICOM algorithm / model name)
    method: str
    model: dict[str, Any]  # the method's identity (backbone, weights and checksum, image size...)
    reference_bank: BankRecord | None
    shots: int
    references_note: str | None
    physical_grid: dict[str, Any] | None
    physical_grid_note: str | None
    preprocessing: dict[str, Any]
    aggregate: str
    triage: dict[str, Any] | None
    threshold: float
    threshold_source: str
    allow_other_modality: bool

    @classmethod
    def from_description(cls, description: Mapping[str, Any], display_name: str) -> "ScoringRecord":
        """From a scorer's description (``VolumeScorer.describe()``), read once by the study run."""
        fields = dict(description)
        bank = fields.pop("reference_bank", None)
        return cls(display_name=display_name, reference_bank=None if bank is None else BankRecord(**bank), **fields)

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The bank's calibration (None without a bank, or for a bank built uncalibrated)."""
        return None if self.reference_bank is None else self.reference_bank.calibration

    def describe(self) -> dict[str, Any]:
        """study.json's ``scoring`` and the SR's algorithm parameters, in this order."""
        return {"method": self.method, "model": self.model,
                "reference_bank": None if self.reference_bank is None else self.reference_bank.describe(),
                "shots": self.shots, "references_note": self.references_note, "physical_grid": self.physical_grid,
                "physical_grid_note": self.physical_grid_note, "preprocessing": self.preprocessing,
                "aggregate": self.aggregate, "triage": self.triage, "threshold": self.threshold,
                "threshold_source": self.threshold_source, "allow_other_modality": self.allow_other_modality}


class ComparabilityVerdict(Protocol):
    """The comparability guard's verdict on a study (volume/comparability.py)."""

    notes: Sequence[str]

    def line(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...


class ScoredSlice(Protocol):
    """One slice of a scored study, as slices.csv and study.json list it."""

    index: int
    position_mm: float
    score: float
    skipped: bool
    skip_reason: str | None
    matched: list[tuple[int, int]]
    comparability: str
    reference_distance: float


class PreparedSlices(Protocol):
    slices01: np.ndarray  # the windowed slices in [0, 1] (Z, Y, X): the overlays' background


class ScoredStudy(Protocol):
    """The part of a study result the writers read (``volume.scoring.StudyResult`` has it all)."""

    probability: np.ndarray
    mask: np.ndarray
    slices: Sequence[ScoredSlice]
    score: float
    aggregate: str
    top_slices: list[int]
    threshold: float
    threshold_source: str
    prepared: PreparedSlices
    triage: dict[str, Any] | None
    comparability: ComparabilityVerdict | None
    physical_grid: dict[str, Any] | None

    def scored(self) -> Sequence[ScoredSlice]: ...
