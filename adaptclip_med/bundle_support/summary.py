"""Run-level bundle output: one table of every study in the run, highest score first.

Per-study results live in each study's folder, and ``study.json`` is written last, so the
summary is built from those files after the engine has finished.  That makes it independent of
how the studies were shared out: under ``torchrun`` rank 0 writes it once every process is done,
even when a process had no study to score.  Studies without ``study.json`` (a failed or
interrupted study) are listed as missing rather than silently dropped.  Output folders are
pseudonymous, so each row also names its input, relative to ``dataset_dir`` with UID-like path
components hashed (:func:`~adaptclip_med.utils.redact.describe_path`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptclip_med.utils.distributed import is_distributed, rank
from adaptclip_med.utils.atomic import atomic_write_text
from adaptclip_med.utils.redact import describe_path
from adaptclip_med.outputs.layout import BUNDLE_SUMMARY_CSV, BUNDLE_SUMMARY_JSON, STUDY_JSON

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("study", "status", "score", "mode", "top_slices", "threshold", "input")


def _row(item: dict[str, Any], output_dir: Path, dataset_dir: str | Path | None) -> dict[str, Any]:
    study = str(item["study"])
    source = describe_path(item["image"], dataset_dir) if item.get("image") else ""
    report_file = output_dir / study / STUDY_JSON
    if not report_file.is_file():
        return {"study": study, "status": "missing", "score": None, "mode": "", "top_slices": [], "threshold": None,
                "input": source}
    report = json.loads(report_file.read_text())
    shots = (report.get("scoring") or {}).get("shots") or 0
    return {"study": study, "status": "done", "score": report.get("score"),
            "mode": f"{shots}-shot" if shots else "zero-shot",
            "top_slices": [entry["index"] for entry in report.get("top_slices", [])], "threshold": report.get("threshold"),
            "input": source}


def summarise_outputs(output_dir: str | Path, datalist: Sequence[dict[str, Any]],
                      dataset_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per datalist study, scored studies by descending score, then missing ones."""
    rows = [_row(item, Path(output_dir), dataset_dir) for item in datalist]
    return sorted(rows, key=lambda row: (row["score"] is None, -(row["score"] or 0.0), row["study"]))


def write_summary(output_dir: str | Path, datalist: Sequence[dict[str, Any]],
                  dataset_dir: str | Path | None = None) -> Path | None:
    """Write ``summary.csv`` and ``summary.json`` (rank 0 only; call after every process is done)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()
    if rank() != 0:
        return None
    rows = summarise_outputs(output_dir, datalist, dataset_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[key] is None else f"{row[key]:.6g}" if key in ("score", "threshold")
                         else " ".join(map(str, row[key])) if key == "top_slices" else row[key] for key in SUMMARY_COLUMNS])
    root = Path(output_dir)
    atomic_write_text(root / BUNDLE_SUMMARY_CSV, buffer.getvalue())
    path = atomic_write_text(root / BUNDLE_SUMMARY_JSON, json.dumps({"studies": rows}, indent=1, sort_keys=True))
    missing = sum(row["status"] == "missing" for row in rows)
    log.info("%d of %d studies scored%s; summary in %s", len(rows) - missing, len(rows),
             f" ({missing} missing)" if missing else "", path)
    return path
