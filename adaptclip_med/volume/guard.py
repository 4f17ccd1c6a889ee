"""The comparability guard for ONE study, as the volume scorer runs it.

:meth:`GuardRun.start` (before scoring) places the study in the bank's body-axis coverage
(``volume/coverage.py``) and says which slices are outside it and where the others are matched;
the scorer then measures each scored slice's reference distance while it predicts
(``volume/slice_step.py``), and :meth:`GuardRun.finish` flags the slices beyond the bank's
calibrated bound and returns the study's verdict (``volume/comparability.py``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptclip_med.volume.comparability import (
    SLICE_OUT_OF_DISTRIBUTION,
    ModalityCheck,
    StudyComparability,
    distribution_bound,
    missing_bound_note,
    not_assessed,
    verdict,
)
from adaptclip_med.volume.coverage import CoveragePlan, plan_coverage

if TYPE_CHECKING:
    from adaptclip_med.slice_preprocessing import PreparedVolume
    from adaptclip_med.volume.bank.reader import ReferenceBank

log = logging.getLogger(__name__)

NO_BANK_REASON = "no reference bank: the study was compared with no normal scans"
NO_COVERAGE_NOTE = "bank '{name}' records no body-axis extent or slice spacing: the coverage check was skipped"
NO_FEATURES_NOTE = "method '{method}' has no features to compare slices with: the distribution check was skipped"


@dataclass
class GuardRun:
    bank: "ReferenceBank | None"
    relative_position: np.ndarray  # (Z,) positions used for matching
    outside: np.ndarray  # (Z,) bool
    plan: CoveragePlan | None = None
    modality: ModalityCheck | None = None
    bound: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, bank: "ReferenceBank | None", volume: Any, prepared: "PreparedVolume",
              modality: ModalityCheck | None) -> "GuardRun":
        depth = prepared.slices01.shape[0]
        if bank is None:
            return cls(None, prepared.relative_position, np.zeros(depth, dtype=bool))
        notes = []
        if modality is not None and modality.matches is None:
            notes.append(f"modality not checked (study '{modality.study or 'unknown'}', bank "
                         f"'{'/'.join(modality.bank) or 'unknown'}')")
        plan = plan_coverage(bank, volume, prepared)
        if plan is None:
            notes.append(NO_COVERAGE_NOTE.format(name=bank.name))
        bound = distribution_bound(bank)
        if bound is None:
            note = missing_bound_note(bank)
            log.warning("%s", note)
            notes.append(note)
        relative = plan.relative_position if plan is not None else prepared.relative_position
        outside = plan.outside if plan is not None else np.zeros(depth, dtype=bool)
        return cls(bank, relative, outside, plan, modality, bound, notes)

    @property
    def measures(self) -> bool:
        """Whether the scorer should measure reference distances (a bound to compare them with)."""
        return self.bound is not None

    def outside_slices(self) -> list[int]:
        return [int(z) for z in np.flatnonzero(self.outside)]

    def outside_reason(self, z: int) -> str:
        assert self.plan is not None
        return self.plan.reason(z)

    def finish(self, slices: list, method_name: str) -> StudyComparability:
        """Flag the scored slices beyond the bound; the study's verdict."""
        if self.bank is None:
            return not_assessed(NO_BANK_REASON)
        notes = list(self.notes)
        flagged: list[int] = []
        distribution = None
        if self.bound is not None:
            limit = float(self.bound["bound"])
            measured = [s for s in slices if not s.skipped and math.isfinite(s.reference_distance)]
            if not measured and any(not s.skipped for s in slices):
                notes.append(NO_FEATURES_NOTE.format(method=method_name))
            for s in measured:
                if s.reference_distance > limit:
                    s.comparability = SLICE_OUT_OF_DISTRIBUTION
                    flagged.append(s.index)
            distribution = {"bound": limit, "statistic": self.bound.get("statistic"),
                            "calibration_max": self.bound.get("max"),
                            "largest_distance": max((s.reference_distance for s in measured), default=None)}
        body = sum(1 for s in slices if not (s.skip_reason or "").startswith("background"))
        return verdict(body, self.outside_slices(), flagged, self.modality,
                       None if self.plan is None else self.plan.describe(), distribution, notes)
