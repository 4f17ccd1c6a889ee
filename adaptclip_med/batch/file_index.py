"""The run's file index: pseudonymous file key -> path relative to the input root, owner-only.

Batch results (errors.csv, worklist.csv, the journal, study.json, logs) name input files by their
pseudonymous key only, because folder and file names of exports often hold patient names.  The
operator who must find a reported file looks its key up here: ``<out>/.batch/file_index.csv``,
created readable by its owner only, never shown by the dashboard, never sent anywhere.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from adaptclip_med.batch.journal import STATE_DIR
from adaptclip_med.utils.atomic import atomic_write_bytes

FILE_INDEX = "file_index.csv"


def file_index_path(out_dir: Path) -> Path:
    return Path(out_dir) / STATE_DIR / FILE_INDEX


def write_file_index(out_dir: Path, index: dict[str, str]) -> Path:
    """Write (replace) the index of this run's input files, merged with the previous run's."""
    path = file_index_path(out_dir)
    merged = dict(read_file_index(out_dir))
    merged.update(index)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("file_key", "relative_path"))
    writer.writerows(sorted(merged.items()))
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"), private=True)


def read_file_index(out_dir: Path) -> dict[str, str]:
    try:
        with open(file_index_path(out_dir), newline="", encoding="utf-8") as handle:
            return {row["file_key"]: row["relative_path"] for row in csv.DictReader(handle)}
    except (OSError, KeyError, csv.Error):
        return {}
