"""The signed decision in words a PACS keeps: a reviewed TID 1500 SR whose observer is the reader.

Built on the project's one SR writer (:mod:`adaptclip_med.outputs.dicom_sr`), with a
:class:`~adaptclip_med.outputs.dicom_sr.PersonObserver` (the authenticated reviewer, their
``issuer#subject`` as login name) instead of the algorithm as observer.  The reader's decision is
the study's qualitative finding (anomaly present only for "Confirmed anomaly"); the notes and the
per-finding notes are TEXT items; the regions are those of the reviewed mask (the reviewed SEG's
segment 1) when the reader confirmed them, none otherwise.  The document is marked VERIFIED by the
reader for the organisation that authenticated them (the identity provider, or the local host).
"""

from __future__ import annotations

import math

from pathlib import Path
from urllib.parse import urlparse

from adaptclip_med.review.store import Review

MAX_ORGANIZATION = 64  # VR LO


def reader_name(review: Review) -> str:
    """The person's name as recorded with the review (``Name <e-mail>`` -> ``Name``)."""
    name = review.reviewer.split(" <", 1)[0].strip()
    return name or review.reviewer_id.rsplit("#", 1)[-1] or "unknown reader"


def reader_organization(review: Review) -> str:
    """Who vouches for the reader's identity: the identity provider's host, or the local host."""
    issuer = review.reviewer_id.rsplit("#", 1)[0] if "#" in review.reviewer_id else ""
    parsed = urlparse(issuer)
    text = parsed.netloc if parsed.scheme in ("http", "https") and parsed.netloc else issuer or "adaptclip-med review"
    return text[:MAX_ORGANIZATION]


def review_notes(review: Review) -> list[str]:
    """The reader's notes as TEXT items: the overall note, then one per annotated finding."""
    notes = [f"Reader notes: {review.notes}"] if review.notes else []
    notes += [f"Finding {n.finding_id} ({n.description}): {n.note}" for n in review.findings
              if n.note and n.verdict != "rejected"]
    notes.append(f"Review revision {review.revision}; audit record {review.record_hash}" if review.record_hash
                 else f"Review revision {review.revision}")
    return notes


def write_reviewed_sr(study, review: Review, threshold: float, seg_path: Path, target: Path, run=None) -> Path:
    """Write the reviewed SR for ``study`` (DICOM source images loaded) next to the reviewed SEG;
    ``run`` (:class:`~adaptclip_med.outputs.result_series.ResultRun`, the export's) numbers its series."""
    import pydicom

    from adaptclip_med.outputs.dicom_sources import derivable_headers, deriving_from
    from adaptclip_med.outputs.dicom_sr import PersonObserver, StudyFinding, write_measurement_report
    from adaptclip_med.outputs.equipment import AlgorithmEquipment
    from adaptclip_med.outputs.reader_measurements import place as place_measurements
    from adaptclip_med.outputs.regions import anomaly_regions, map_peak
    from adaptclip_med.review.viewer_data import canonical_affine
    from adaptclip_med.outputs.result_series import ResultRun
    from adaptclip_med.review.studies import method_of

    run = run or ResultRun()
    confirmed = review.decision == "confirmed"
    source = "reader's threshold" if review.threshold_override is not None else study.threshold_source or "model"
    score = float(study.score)
    # the peak anchors the study finding in space: OHIF 3.13 breaks on a group without coordinates
    finding = StudyFinding(confirmed, f"Reader's decision: {review.decision_label} (revision {review.revision})",
                           float(threshold), source, score if math.isfinite(score) else None,
                           map_peak(study.probability, study.volume))
    found = anomaly_regions(study.probability, threshold, study.volume)
    accepted = review.accepted_ids()
    if accepted is not None:  # only the findings the reader accepted; the rejected ones are in the audit
        found = found.accepted(accepted)
    regions = found.regions if confirmed else []
    algorithm = AlgorithmEquipment.for_scoring(method_of(study.report), study.report.get("scoring") or {})
    observer = PersonObserver(reader_name(review), login_name=review.reviewer_id or None,
                              organization=reader_organization(review))
    segmentation = pydicom.dcmread(seg_path, stop_before_pixels=True)
    placed, unplaced = place_measurements(study.volume, canonical_affine(study), list(review.measurements),
                                          str(getattr(study.volume, "modality", "")))
    with deriving_from(study.volume, "reviewed DICOM SR"):
        return write_measurement_report(
            target, source_images=derivable_headers(study.volume), segmentation=segmentation, observer=observer,
            algorithm=algorithm, finding=finding, regions=regions, regions_total=found.total if confirmed else 0,
            notes=[*review_notes(review), *unplaced], reader_measurements=placed, series_number=run.series_number("REVIEWED_SR"),
            series_description=run.series_description(algorithm.name, "REVIEWED_SR"))
