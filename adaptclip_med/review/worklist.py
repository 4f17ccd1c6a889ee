"""The reading worklist: scored studies ranked by score, each with its review status.

Studies come from batch results (``worklist.csv`` with columns study_key, score, top_slice (1-based),
series, status, output — see ``adaptclip-med batch``), from any folder of study outputs (each
``study.json`` marks a finished study, so half-written results never show up), and from the
studies the dashboard scored itself.  The review status comes from the sign-off store, never from
the batch file: the batch ``status`` only says whether scoring succeeded.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from adaptclip_med.batch.worklist import WORKLIST
from adaptclip_med.errors import PathNotAllowedError
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.store import UNREAD
from adaptclip_med.outputs.layout import STUDY_JSON
from adaptclip_med.outputs.thresholds import flag_of
from adaptclip_med.utils.keys import is_safe_key
from adaptclip_med.utils.redact import describe_path
from adaptclip_med.volume.comparability import line_from_report

log = logging.getLogger(__name__)

_SEARCH_DEPTH = 3
NOT_SCORED = "not scored"
DEFAULT_METHOD = "adaptclip"


@dataclass(frozen=True)
class WorklistEntry:
    study_key: str
    score: float | None
    top_slice: int | None  # 1-based slice number of the highest-scoring slice (the viewer's)
    series: str
    output_dir: Path | None
    scoring_status: str  # "done" when study.json exists, else what the batch recorded
    status: str = UNREAD  # review status: unread / confirmed / false_positive / normal
    description: str = ""
    modality: str = ""
    slices: int | None = None
    study_date: str = ""
    method: str = ""
    threshold: float | None = None
    mask_voxels: int | None = None  # voxels at or above the model threshold (a possible finding when > 0)
    problem: str = ""  # why the results cannot be opened ("" when they can)
    #: the comparability guard's line (volume/comparability.py): "comparable", "partly comparable: ...",
    #: "not comparable: ..." (no score: ranked after every scored study), "" when not recorded
    comparability: str = ""
    flag: str = ""  # normal / abnormal at the operating (pixel) threshold, or not comparable ("" when unknown)
    patient: str = ""  # patient name, only when discovery read it (a user allowed to see it)

    @property
    def openable(self) -> bool:
        return self.scoring_status == "done" and self.output_dir is not None and not self.problem

    @property
    def scored(self) -> bool:
        return self.scoring_status != NOT_SCORED


def read_worklist_csv(path: Path, roots: AllowedRoots) -> list[WorklistEntry]:
    """Rows of a batch ``worklist.csv``; output folders outside the allowed roots are dropped."""
    entries = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row.get("study_key") or "").strip()
            if not key:
                continue
            if not is_safe_key(key):
                log.warning("%s: a row with an invalid study key was ignored", describe_path(path))
                continue
            output = _allowed_output(path.parent, row.get("output") or "", roots)
            done = output is not None and (output / STUDY_JSON).is_file()
            batch_status = (row.get("status") or "").strip() or "unknown"
            status = "done" if done else ("results not readable" if batch_status == "done" else batch_status)
            entries.append(WorklistEntry(key, _float(row.get("score")), _int(row.get("top_slice")), row.get("series") or "",
                                         output if done else None, status,
                                         comparability=(row.get("comparability") or "").strip(),
                                         flag=(row.get("flag") or "").strip()))
    return entries


def study_entry(output_dir: Path, study_key: str | None = None) -> WorklistEntry | None:
    """An entry from a finished study folder (None while ``study.json`` is absent or unreadable)."""
    try:
        report = json.loads((output_dir / STUDY_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    top = report.get("top_slices") or []
    source = report.get("source") or {}
    info = report.get("review_info") or {}
    series = report.get("series") or source.get("modality") or ""
    key = study_key or report.get("study_key") or _comparison_key(output_dir) or output_dir.name
    if not is_safe_key(key):
        log.warning("%s: invalid study key, the study is ignored", describe_path(output_dir / STUDY_JSON))
        return None
    shape = source.get("shape_zyx") or []
    scoring = report.get("scoring") or {}
    return WorklistEntry(str(key), _float(report.get("score")), _top_slice_number(top),
                         str(series), output_dir, "done", description=str(info.get("description") or ""),
                         modality=str(source.get("modality") or ""), slices=_int(shape[0]) if shape else None,
                         study_date=str(info.get("study_date") or ""),
                         method=str(scoring.get("method") or info.get("method") or DEFAULT_METHOD),
                         threshold=_float(report.get("threshold")), mask_voxels=_int(report.get("mask_voxels")),
                         problem=results_problem(output_dir), comparability=line_from_report(report),
                         flag=flag_of(report) or "")


def _person(name: str | None) -> str:
    from adaptclip_med.review.study_context import _person_name

    return _person_name(name) if name else ""


def _top_slice_number(top: list) -> int | None:
    """The 1-based number of the first top slice (``slice``, or ``index`` + 1 in older study.json)."""
    if not top or not isinstance(top[0], dict):
        return None
    number = _int(top[0].get("slice"))
    if number is not None:
        return number
    index = _int(top[0].get("index"))
    return None if index is None else index + 1


def _comparison_key(output_dir: Path) -> str:
    """A method folder of a ``score --method a,b`` comparison is named after the method: the study
    is the comparison folder (``<out>``), not ``adaptclip`` or ``winclip``."""
    from adaptclip_med.review.studies import comparison_folders

    return output_dir.parent.name if comparison_folders(output_dir) else ""


def results_problem(output_dir: Path) -> str:
    """Why a finished-looking study folder cannot be opened ("" when it can): checked from the
    files' headers only, so the worklist flags a broken study instead of ranking it first."""
    from adaptclip_med.outputs.layout import PROBABILITY_NIFTI, SLICES_CSV

    prob = output_dir / PROBABILITY_NIFTI
    if not prob.is_file():
        return "results incomplete: the anomaly map is missing"
    try:
        import nibabel as nib

        nib.load(str(prob)).header  # noqa: B018 - reading the header is the check
    except Exception:  # nibabel raises several types for damaged files
        return "results damaged: the anomaly map cannot be read"
    if not (output_dir / SLICES_CSV).is_file():
        return "results incomplete: the per-slice scores are missing"
    return ""


def discover_results(folder: Path, roots: AllowedRoots) -> list[WorklistEntry]:
    """A results folder: its worklist.csv if present, plus any finished study folder below it."""
    folder = roots.check(folder)
    entries: dict[str, WorklistEntry] = {}
    csv_file = folder / WORKLIST
    if csv_file.is_file():
        entries.update((e.study_key, e) for e in read_worklist_csv(csv_file, roots))
    known_dirs = {e.output_dir for e in entries.values() if e.output_dir is not None}
    for study_json in _study_jsons(folder):
        if study_json.parent in known_dirs or not roots.contains(study_json):
            continue
        entry = study_entry(study_json.parent)
        if entry is None:
            continue
        earlier = entries.get(entry.study_key)
        if earlier is None:
            entries[entry.study_key] = entry
        elif entry.method and entry.method not in earlier.method.split(", ") and earlier.openable:
            entries[entry.study_key] = replace(earlier, method=f"{earlier.method}, {entry.method}")  # one row, both maps
    return list(entries.values())


def build_worklist(sources: Iterable[WorklistEntry], statuses: dict[str, str]) -> list[WorklistEntry]:
    """Merge entries (later sources win for the same key), attach review status, rank by score."""
    merged: dict[str, WorklistEntry] = {}
    for entry in sources:
        merged[entry.study_key] = entry
    ranked = sorted(merged.values(), key=lambda e: (not e.openable, not e.scored, e.score is None, -(e.score or 0.0), e.study_key))
    return [replace(e, status=statuses.get(e.study_key, UNREAD)) for e in ranked]


def _study_jsons(folder: Path) -> list[Path]:
    found: list[Path] = []
    for depth in range(_SEARCH_DEPTH + 1):
        found.extend(sorted(folder.glob("/".join(["*"] * depth + [STUDY_JSON]))))
    return [p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def _allowed_output(base: Path, text: str, roots: AllowedRoots) -> Path | None:
    text = text.strip()
    if not text:
        return None
    path = Path(text)
    try:
        return roots.check(path if path.is_absolute() else base / path)
    except PathNotAllowedError:
        return None


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def with_candidates(entries: list[WorklistEntry], candidates: Iterable) -> list[WorklistEntry]:
    """Fill description/modality/slices/date from the series under the data roots (matched by the
    pseudonymous study key) and list the studies found there but not scored yet."""
    by_study: dict[str, list] = {}
    for candidate in candidates:
        by_study.setdefault(candidate.study_key, []).append(candidate)
    known = {e.study_key for e in entries}
    filled = []
    for entry in entries:
        found = by_study.get(entry.study_key)
        if found:
            c = found[0]
            entry = replace(entry, description=entry.description or c.description, modality=entry.modality or c.modality,
                            slices=entry.slices or c.num_slices, study_date=entry.study_date or c.study_date,
                            patient=entry.patient or _person(c.patient_name))
        filled.append(entry)
    for key, found in by_study.items():
        if key in known:
            continue
        c = found[0]
        filled.append(WorklistEntry(key, None, None, c.key[:8], None, NOT_SCORED, description=c.description,
                                    modality=c.modality or c.kind.upper(), slices=c.num_slices, study_date=c.study_date,
                                    patient=_person(c.patient_name)))
    return filled


def worklist_entries(results: Iterable[Path], output: Path, store, readable: AllowedRoots,
                     candidates: Iterable = ()) -> list[WorklistEntry]:
    """Everything the worklist lists: batch/score result folders, the dashboard's own output, the
    studies the dashboard scored itself (``store``: the :class:`~adaptclip_med.review.store.ReviewStore`)
    and, from ``candidates`` (discovered series), the studies not scored yet."""
    entries: list[WorklistEntry] = []
    for folder in (*results, output):
        if Path(folder).is_dir():
            entries.extend(discover_results(Path(folder), readable))
    for key, output_dir in store.registered_studies():
        entry = study_entry(output_dir, key) if output_dir is not None and readable.contains(output_dir) else None
        if entry is not None:
            entries.append(entry)
    merged: dict[str, WorklistEntry] = {}
    for entry in entries:
        merged[entry.study_key] = entry
    return build_worklist(with_candidates(list(merged.values()), candidates), store.statuses())
