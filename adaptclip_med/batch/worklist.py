"""worklist.csv and errors.csv, regenerated whole from journal records.

Both files are rewritten atomically from the records of the studies in the current run (never
appended to), so a crash leaves either the previous complete file or the new complete file, and
a study can never appear twice.  The worklist is what a radiologist opens first: highest score on
top, then the studies that are not comparable with the reference bank (no study score, the reason
in the ``comparability`` column: volume/comparability.py), failed studies at the bottom.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable

from adaptclip_med.outputs.slice_numbers import slice_number
from adaptclip_med.batch.discovery import FileError
from adaptclip_med.batch.journal import DONE, FAILED, StudyRecord
from adaptclip_med.outputs import layout
from adaptclip_med.utils.atomic import atomic_write_bytes

WORKLIST = layout.WORKLIST_CSV
ERRORS = layout.ERRORS_CSV
WORKLIST_COLUMNS = ("study_key", "score", "flag", "top_slice", "series", "status", "comparability", "output", "notes")
ERROR_COLUMNS = ("study_key", "reason")


def _csv_bytes(header: Iterable[str], rows: Iterable[Iterable[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _ranked(record: StudyRecord) -> bool:
    """Whether a study has a study score to rank by (a not-comparable one has none)."""
    return record.status == DONE and record.score is not None and not math.isnan(record.score)


def _order(record: StudyRecord) -> tuple:
    scored = _ranked(record)
    return (not scored, record.status != DONE, -(record.score or 0.0) if scored else 0.0, record.key)


def _flag(out_dir: Path, record: StudyRecord) -> str:
    """normal / abnormal at the operating threshold, from the study's own study.json ("" when not scored)."""
    import json

    from adaptclip_med.outputs.layout import STUDY_JSON
    from adaptclip_med.outputs.thresholds import flag_of

    if record.status != DONE or not record.output:
        return ""
    try:
        report = json.loads((Path(out_dir) / record.output / STUDY_JSON).read_text())
    except (OSError, ValueError):
        return ""
    return (flag_of(report) or "") if isinstance(report, dict) else ""


def write_worklist(out_dir: Path, records: Iterable[StudyRecord]) -> Path:
    rows = [(r.key, f"{r.score:.6f}" if _ranked(r) else "", _flag(out_dir, r),
             "" if r.top_slice is None else slice_number(r.top_slice),
             r.series, r.status, r.comparability, r.output, r.notes) for r in sorted(records, key=_order)]
    return atomic_write_bytes(Path(out_dir) / WORKLIST, _csv_bytes(WORKLIST_COLUMNS, rows))


def write_errors(out_dir: Path, records: Iterable[StudyRecord], file_errors: Iterable[FileError] = ()) -> Path:
    rows = [(r.key, r.reason) for r in sorted(records, key=lambda r: r.key) if r.status == FAILED]
    rows += [(e.key, e.reason) for e in file_errors]
    return atomic_write_bytes(Path(out_dir) / ERRORS, _csv_bytes(ERROR_COLUMNS, rows))
