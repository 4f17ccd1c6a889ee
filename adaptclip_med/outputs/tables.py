"""Per-slice CSV and per-study JSON summaries, written atomically with stable formatting."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.utils.atomic import atomic_write_text

#: ``slice`` is the viewer's 1-based number, ``instance_number`` the DICOM InstanceNumber of that
#: image (empty where none), ``array_index`` the 0-based index into the map (outputs/slice_numbers.py).
SLICE_COLUMNS = ("slice", "instance_number", "array_index", "position_mm", "score", "skipped", "skip_reason")


def _as_mapping(row: Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return row
    raise TypeError(f"slice rows must be mappings or dataclasses, got {type(row).__name__}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(float(value)) else f"{float(value):.6g}"
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def write_slices_csv(path: str | Path, rows: Iterable[Any]) -> Path:
    """One line per slice: slice, instance_number, array_index, position_mm, score, skipped, skip_reason, then any extra keys
    (sorted).  Missing values and NaN scores (skipped slices) are empty cells; booleans are
    ``true``/``false``; floats have 6 significant digits."""
    records = [_as_mapping(row) for row in rows]
    extra = sorted({key for record in records for key in record} - set(SLICE_COLUMNS))
    columns = [*SLICE_COLUMNS, *extra]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(column)) for column in columns])
    return atomic_write_text(path, buffer.getvalue())


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays, paths, dataclasses, tuples/sets; NaN/inf -> null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_study_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """The study summary as indented JSON with sorted keys (diff-friendly, reproducible)."""
    text = json.dumps(_jsonable(payload), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")
