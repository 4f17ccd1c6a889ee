"""Finding, loading and (when needed) scoring the study a reviewer opens.

Source images are located from what the store recorded when the dashboard opened the study, else
by matching the pseudonymous study key against the series discovered under the data roots (batch
results carry the key, never the input path).  Every path is re-checked against the allowed roots
before it is read, because the store may outlive a change of configuration.
"""

from __future__ import annotations

import time
from pathlib import Path

from adaptclip_med.review.discovery import Candidate
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.store import StudyLocation
from adaptclip_med.review.study_data import ReviewStudy, from_result
from adaptclip_med.utils.keys import key_path
from adaptclip_med.volume.pipeline import write_study_outputs
from adaptclip_med.volume.scoring import VolumeScorer

STUDIES_DIR = "studies"


def dashboard_output_dir(output: Path, study_key: str) -> Path:
    """Where the dashboard writes the results of a study it scores itself."""
    return key_path(Path(output) / STUDIES_DIR, study_key)


def study_key_of(volume, candidate: Candidate) -> str:
    """The key batch scoring uses for DICOM (pseudonymous Study UID), else the candidate's file key."""
    return str(volume.meta.get("study_key") or candidate.study_key)


def locate_source(study_key: str, recorded: StudyLocation, candidates: list[Candidate]) -> StudyLocation:
    """The recorded source, else the study's series under the roots (the default series when
    several match, the same rule batch scoring applies)."""
    if recorded.source is not None:
        return recorded
    matches = [c for c in candidates if c.study_key == study_key]
    if not matches:
        return recorded
    dicom = [c for c in matches if c.kind == "dicom"]
    if dicom:
        from adaptclip_med.io.loader import default_series

        chosen = default_series([c.series for c in dicom])
        match = next(c for c in dicom if c.series is chosen)
    else:
        match = matches[0]
    found = match.source()
    return StudyLocation(found.source, found.series_key, recorded.output_dir)


def load_source(location: StudyLocation, roots: AllowedRoots, axis: str = "axial"):
    """The study's volume, read only after its path passed the allowed-roots check."""
    from adaptclip_med.io.loader import load_study

    assert location.source is not None
    path = roots.check(location.source)
    volume, _ = load_study(path, series_rule=location.series_key, axis=axis)
    return volume


def score_for_review(volume, study_key: str, out_dir: Path, scorer: VolumeScorer) -> ReviewStudy:
    """Score, write the standard study outputs (study.json last), and keep the full result in
    memory: unlike the files, it has the matched reference slices of every slice."""
    started = time.time()
    result = scorer.score(volume)
    write_study_outputs(volume, result, Path(out_dir), scorer, time.time() - started,
                        extra_report={"study_key": study_key})
    return from_result(study_key, Path(out_dir), volume, result)
