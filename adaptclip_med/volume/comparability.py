"""Is this study comparable with the bank's normal scans?  The study-level verdict of the guard.

Three checks, in the order the scorer runs them:

1. **modality** (before scoring): the study's DICOM modality against the modalities of the bank's
   scans.  A mismatch is refused in one line unless the user passes ``--allow-other-modality``
   (recorded in ``study.json``).  Unknown modalities ("OT": NIfTI without HU, 2-D images) are not
   checked, and the report says so.
2. **coverage** (before scoring, ``volume/coverage.py``): body slices outside the bank's
   body-axis coverage are "not comparable": no map, no score, the reason in ``slices.csv``.
3. **distribution** (while scoring, ``volume/distribution_check.py``): a slice whose reference
   distance exceeds the bound calibrated in the bank is "out of reference distribution": its
   probability map is still written (a reader may look), but it does not count towards the study
   score and adds nothing to the mask (so nothing to the DICOM SEG).

The verdict (``comparable`` / ``partly comparable`` / ``not comparable``, with reasons) is the
:class:`StudyComparability` in every study result (``StudyResult.comparability``), written to
``study.json`` as ``comparability``, printed by ``score``, listed in ``worklist.csv`` and shown by
the dashboard.  A not-comparable study has no study score (null): it is never ranked as a top
anomaly.  Banks built before these checks existed lack the distribution bound: that check is
skipped with a one-line note (rebuild the bank to get it).
"""

from __future__ import annotations


import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from adaptclip_med.errors import InputError

if TYPE_CHECKING:
    from adaptclip_med.volume.bank.reader import ReferenceBank

log = logging.getLogger(__name__)

COMPARABLE = "comparable"
PARTLY = "partly comparable"
NOT_COMPARABLE = "not comparable"
NOT_ASSESSED = "not assessed"
#: per-slice states (``comparability`` column of slices.csv)
SLICE_OUTSIDE = "outside coverage"
SLICE_OUT_OF_DISTRIBUTION = "out of reference distribution"
UNKNOWN_MODALITIES = frozenset({"", "OT"})
OVERRIDE_FLAG = "--allow-other-modality"
OLD_BANK_NOTE = ("bank '{name}' was built before the distribution check existed: that check was skipped "
                 "(rebuild the bank with 'adaptclip-med references build' to enable it)")


def bank_modalities(bank: "ReferenceBank") -> list[str]:
    """The known modalities of the bank's normal scans, sorted."""
    found = {str(entry.get("modality") or "").upper() for entry in bank.meta.get("scans") or []}
    return sorted(found - UNKNOWN_MODALITIES)


NO_BOUND_NOTE = ("bank '{name}' has no calibrated distribution bound ({why}): the distribution check was "
                 "skipped")


def missing_bound_note(bank: "ReferenceBank") -> str:
    """Why a bank has no distribution bound, as the one-line note ``study.json`` and ``score`` give."""
    recorded = bank.meta.get("comparability")
    if not isinstance(recorded, dict):
        return OLD_BANK_NOTE.format(name=bank.name)
    why = recorded.get("distribution_skipped") or "not recorded"
    return NO_BOUND_NOTE.format(name=bank.name, why=why)


def distribution_bound(bank: "ReferenceBank") -> dict[str, Any] | None:
    """The calibrated distribution statistics of the bank (None for banks built without them)."""
    recorded = (bank.meta.get("comparability") or {}).get("distribution")
    return recorded if isinstance(recorded, dict) and recorded.get("bound") is not None else None


@dataclass
class ModalityCheck:
    study: str
    bank: list[str]
    matches: bool | None  # None: not checked (a modality unknown)
    override: bool = False

    def describe(self) -> dict[str, Any]:
        return {"study": self.study, "bank": self.bank, "checked": self.matches is not None,
                "matches": self.matches, "override": self.override}


def check_modality(study_modality: str, bank: "ReferenceBank", allow_other: bool = False) -> ModalityCheck:
    """Refuse (one line) a study whose modality differs from the bank's, unless ``allow_other``."""
    study = str(study_modality or "").upper()
    known = bank_modalities(bank)
    if study in UNKNOWN_MODALITIES or not known:
        return ModalityCheck(study, known, None, allow_other)
    matches = study in known
    if not matches and not allow_other:
        raise InputError(f"the study is {study} but reference bank '{bank.name}' holds {'/'.join(known)} scans: "
                         f"not comparable (use a bank of {study} scans, or pass {OVERRIDE_FLAG} to score it anyway)")
    return ModalityCheck(study, known, matches, allow_other)


@dataclass
class StudyComparability:
    """The guard's verdict on one study (``study.json``: ``comparability``)."""

    status: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    body_slices: int = 0
    comparable_slices: int = 0
    outside_coverage: list[int] = field(default_factory=list)
    out_of_distribution: list[int] = field(default_factory=list)
    modality: dict[str, Any] | None = None
    coverage: dict[str, Any] | None = None
    distribution: dict[str, Any] | None = None
    score_all_slices: float | None = None  # the aggregate over every scored slice, for transparency

    @property
    def comparable(self) -> bool:
        return self.status in (COMPARABLE, PARTLY, NOT_ASSESSED)

    def line(self) -> str:
        """One line for command output and worklists: ``partly comparable: 3 of 16 ...``."""
        return self.status if not self.reasons else f"{self.status}: {'; '.join(self.reasons)}"

    def describe(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": self.reasons, "notes": self.notes, "body_slices": self.body_slices,
                "comparable_slices": self.comparable_slices, "outside_coverage_slices": self.outside_coverage,
                "out_of_distribution_slices": self.out_of_distribution, "modality": self.modality,
                "coverage": self.coverage, "distribution": self.distribution,
                "score_all_scored_slices": self.score_all_slices}


def line_from_report(report: dict[str, Any]) -> str:
    """The one line of a written verdict (``study.json``'s ``comparability``); "" for results
    written before the guard existed."""
    verdict = report.get("comparability") if isinstance(report, dict) else None
    if not isinstance(verdict, dict) or not verdict.get("status"):
        return ""
    reasons = [str(r) for r in verdict.get("reasons") or []]
    return str(verdict["status"]) + (f": {'; '.join(reasons)}" if reasons else "")


def not_assessed(reason: str) -> StudyComparability:
    return StudyComparability(NOT_ASSESSED, [reason])


#: Below this share of the bank's in-plane field of view present in the study, a whole-slice
#: comparison with the references means nothing: the study is not comparable (above it and short
#: of the whole field, partly comparable).  Issue 27's physical grid measures the share.
MIN_FIELD_OF_VIEW_FRACTION = 0.5


def with_field_of_view(found: StudyComparability, fraction: float, reason: str) -> StudyComparability:
    """The verdict once the study's field of view is known to cover only ``fraction`` of the
    bank's grid (``volume/physical_grid.py: grid_coverage``): the uncovered border is compared as
    air where the references show anatomy, so the study is at best partly comparable."""
    if found.status == NOT_ASSESSED:
        return found
    status = found.status
    if fraction < MIN_FIELD_OF_VIEW_FRACTION:
        status = NOT_COMPARABLE
    elif status == COMPARABLE:
        status = PARTLY
    return replace(found, status=status, reasons=[*found.reasons, reason])


def verdict(body_slices: int, outside: list[int], out_of_distribution: list[int], modality: ModalityCheck | None,
            coverage: dict[str, Any] | None, distribution: dict[str, Any] | None, notes: list[str]) -> StudyComparability:
    """Combine the per-slice outcomes into the study's status and reasons."""
    reasons = []
    if modality is not None and modality.matches is False:
        reasons.append(f"modality {modality.study} differs from the bank's {'/'.join(modality.bank)} "
                       f"(scored anyway: {OVERRIDE_FLAG})")
    if outside:
        reasons.append(f"{len(outside)} of {body_slices} body slices outside the bank's body-axis coverage")
    if out_of_distribution:
        reasons.append(f"{len(out_of_distribution)} of {body_slices} body slices out of the reference distribution")
    comparable = body_slices - len(outside) - len(out_of_distribution)
    if comparable <= 0:
        status = NOT_COMPARABLE
    elif outside or out_of_distribution or (modality is not None and modality.matches is False):
        status = PARTLY
    else:
        status = COMPARABLE
    return StudyComparability(status, reasons, list(notes), body_slices, max(comparable, 0), list(outside),
                              list(out_of_distribution), None if modality is None else modality.describe(), coverage,
                              distribution)
