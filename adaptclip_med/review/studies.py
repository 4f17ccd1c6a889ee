"""Finding, loading and (when needed) scoring the study a reviewer opens.

Source images are located from what the store recorded when the dashboard opened the study, else
by matching the pseudonymous study key against the series discovered under the data roots (batch
results carry the key, never the input path).  Every path is re-checked against the allowed roots
before it is read, because the store may outlive a change of configuration.
"""

from __future__ import annotations

from pathlib import Path

from adaptclip_med.review.discovery import Candidate
from adaptclip_med.review.paths import STUDIES_DIR, AllowedRoots
from adaptclip_med.review.store import StudyLocation
from adaptclip_med.review.study_data import ReviewStudy, from_result
from adaptclip_med.utils.keys import key_path
from adaptclip_med.volume.scoring import VolumeScorer
from adaptclip_med.volume.study_run import run_study


DEFAULT_METHOD = "adaptclip"


def dashboard_output_dir(output: Path, study_key: str, method: str | None = None) -> Path:
    """Where the dashboard writes the results of a study it scores itself: ``studies/<key>`` for
    the default method, a sibling ``studies/<key>--<method>`` for any other."""
    name = study_key if not method or method == DEFAULT_METHOD else f"{study_key}--{method}"
    return key_path(Path(output) / STUDIES_DIR, name)


def method_of(report: dict) -> str:
    scoring = report.get("scoring") or {}
    return str(scoring.get("method") or (report.get("review_info") or {}).get("method") or DEFAULT_METHOD)


def comparison_folders(output_dir: Path) -> list[Path]:
    """The method folders of a ``score --method a,b`` comparison that ``output_dir`` belongs to
    (``<out>/<method>/`` listed in ``<out>/methods.json``), in the order scored; [] otherwise."""
    import json

    from adaptclip_med.volume.compare import METHODS_JSON

    parent = Path(output_dir).parent
    try:
        methods = json.loads((parent / METHODS_JSON).read_text()).get("methods") or []
    except (OSError, ValueError, AttributeError):
        return []
    folders = [parent / str(m.get("folder")) for m in methods if isinstance(m, dict) and m.get("folder") not in (None, "", ".")]
    return folders if Path(output_dir) in folders else []


def available_maps(study_key: str, output_dir: Path) -> dict[str, Path]:
    """The anomaly maps of one study, by method: its own folder and the sibling folders holding a
    finished result (study.json) for the same study key, or the other method folders of the same
    comparison (``score --method a,b`` writes no study key: the comparison says they belong together)."""
    import json

    from adaptclip_med.outputs.layout import STUDY_JSON

    output_dir = Path(output_dir)
    maps: dict[str, Path] = {}
    compared = comparison_folders(output_dir)
    try:
        siblings = sorted(p for p in output_dir.parent.iterdir() if p.is_dir())
    except OSError:
        siblings = [output_dir]
    for folder in [output_dir, *[p for p in siblings if p != output_dir]]:
        try:
            report = json.loads((folder / STUDY_JSON).read_text())
        except (OSError, ValueError):
            continue
        if folder != output_dir and folder not in compared and str(report.get("study_key") or "") != study_key:
            continue
        label = method_of(report)
        bank = (report.get("scoring") or {}).get("reference_bank") or {}
        if isinstance(bank, dict) and bank.get("name"):
            label += f" · {bank['name']}"
        if label in maps:
            label += f" ({folder.name})"
        maps[label] = folder
    return maps


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


def score_for_review(volume, study_key: str, out_dir: Path, scorer: VolumeScorer,
                     info: dict | None = None) -> ReviewStudy:
    """Score, write the standard study outputs (study.json last), and keep the full result in
    memory: unlike the files, it has the matched reference slices of every slice.  ``info``
    (description, study date, method: what the worklist shows) goes to study.json's ``review_info``."""
    extra = {"study_key": study_key}
    if info:
        extra["review_info"] = dict(info)
    outputs = run_study(volume, scorer, Path(out_dir), extra_report=extra)
    return from_result(study_key, Path(out_dir), volume, outputs.result)
