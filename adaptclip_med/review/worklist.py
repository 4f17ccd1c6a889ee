"""The reading worklist: scored studies ranked by score, each with its review status.

Studies come from batch results (``worklist.csv`` with columns study_key, score, top_slice,
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
from adaptclip_med.utils.keys import is_safe_key
from adaptclip_med.utils.redact import describe_path

log = logging.getLogger(__name__)

_SEARCH_DEPTH = 3


@dataclass(frozen=True)
class WorklistEntry:
    study_key: str
    score: float | None
    top_slice: int | None
    series: str
    output_dir: Path | None
    scoring_status: str  # "done" when study.json exists, else what the batch recorded
    status: str = UNREAD  # review status: unread / confirmed / false_positive / normal


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
                                         output if done else None, status))
    return entries


def study_entry(output_dir: Path, study_key: str | None = None) -> WorklistEntry | None:
    """An entry from a finished study folder (None while ``study.json`` is absent or unreadable)."""
    try:
        report = json.loads((output_dir / STUDY_JSON).read_text())
    except (OSError, ValueError):
        return None
    top = report.get("top_slices") or []
    series = report.get("series") or report.get("source", {}).get("modality") or ""
    key = study_key or report.get("study_key") or output_dir.name
    if not is_safe_key(key):
        log.warning("%s: invalid study key, the study is ignored", describe_path(output_dir / STUDY_JSON))
        return None
    return WorklistEntry(str(key), _float(report.get("score")), _int(top[0].get("index")) if top else None,
                         str(series), output_dir, "done")


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
        if entry is not None and entry.study_key not in entries:
            entries[entry.study_key] = entry
    return list(entries.values())


def build_worklist(sources: Iterable[WorklistEntry], statuses: dict[str, str]) -> list[WorklistEntry]:
    """Merge entries (later sources win for the same key), attach review status, rank by score."""
    merged: dict[str, WorklistEntry] = {}
    for entry in sources:
        merged[entry.study_key] = entry
    ranked = sorted(merged.values(), key=lambda e: (e.score is None, -(e.score or 0.0), e.study_key))
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
