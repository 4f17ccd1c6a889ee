"""Everything the viewer shows for one study, from a fresh scoring result or from its output folder.

Results on disk are in the SOURCE geometry (that is what clinical viewers need); the viewer works
on the canonical (Z, Y, X) slices, so maps are brought back with the volume's own exact
reorientation.  When the source images cannot be found (e.g. batch results whose input is not
under the data roots), the probability NIfTI's own affine gives the same canonical layout and the
viewer shows the map without the underlying image.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.errors import InputError
from adaptclip_med.review.rendering import Window, percentile_window
from adaptclip_med.utils.redact import describe_path
from adaptclip_med.outputs.layout import PROBABILITY_NIFTI, SLICES_CSV, STUDY_JSON
from adaptclip_med.slice_preprocessing import relative_positions
from adaptclip_med.volume.scoring import StudyResult



@dataclass
class ReviewStudy:
    """A scored study ready for review; arrays are canonical (Z, Y, X)."""

    study_key: str
    output_dir: Path
    probability: np.ndarray
    slice_scores: np.ndarray  # (Z,), nan for skipped (background) slices
    top_slices: list[int]
    score: float
    threshold: float
    threshold_source: str
    report: dict[str, Any]
    volume: Any = None  # io Volume of the source images, None when they were not found
    matched: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # slice -> [(bank scan, source slice)]

    @property
    def comparability(self) -> str:
        """The comparability guard's line from study.json ("" for results older than the guard)."""
        from adaptclip_med.volume.comparability import line_from_report

        return line_from_report(self.report)

    @property
    def depth(self) -> int:
        return int(self.probability.shape[0])

    # The viewer reruns on every slice step: whole-volume figures are computed once per study.
    @cached_property
    def peak(self) -> float:
        """Largest value of the anomaly map."""
        return float(self.probability.max())

    @cached_property
    def instances(self) -> list[int | None]:
        """DICOM InstanceNumber of each slice where it is one source image (reports name it beside
        the 1-based slice number); empty without the source images."""
        from adaptclip_med.outputs.slice_numbers import instance_numbers

        return instance_numbers(self.volume)

    @cached_property
    def auto_window(self) -> Window:
        """Percentile display window of the source images (a neutral one without them)."""
        return percentile_window(self.volume.array) if self.volume is not None else Window(0.5, 1.0)

    @property
    def skipped(self) -> np.ndarray:
        return ~np.isfinite(self.slice_scores)

    @property
    def relative_position(self) -> np.ndarray:
        """Each slice's position within the body extent (what position matching in a bank uses)."""
        return relative_positions(self.skipped)

    @property
    def bank_name(self) -> str | None:
        bank = (self.report.get("scoring") or {}).get("reference_bank")
        return bank.get("name") if isinstance(bank, dict) else None

    @property
    def spacing(self) -> tuple[float, float, float]:
        if self.volume is not None:
            return tuple(float(s) for s in self.volume.spacing)  # type: ignore[return-value]
        return tuple(float(s) for s in self.report.get("source", {}).get("spacing_mm", (1.0, 1.0, 1.0)))  # type: ignore[return-value]

    def model_summary(self) -> str:
        scoring = self.report.get("scoring") or {}
        backbone = ((scoring.get("model") or {}).get("backbone") or {})
        bank = self.bank_name
        shots = scoring.get("shots", 0)
        name = backbone.get("architecture", "unknown backbone")
        weights = backbone.get("weights", "")
        refs = f"{shots}-shot with bank '{bank}'" if bank and shots else "zero-shot"
        return f"{name} ({weights}), adapters {adapter_label(scoring.get('model') or {})}, {refs}"


def adapter_label(model: dict[str, Any]) -> str:
    """The method's trained weights as study.json's model identity records them (``weights``, with
    its provenance source; older files: ``adapters``), "none recorded" rather than "?"."""
    weights = model.get("adapters") or model.get("weights")
    if not weights:
        return "none recorded"
    source = (model.get("weights_provenance") or {}).get("source")
    sha = model.get("weights_sha256")
    text = str(weights)
    if source and source != weights:
        text += f" ({source})"
    return text + (f" sha256 {str(sha)[:12]}" if sha else "")


def from_result(study_key: str, output_dir: Path, volume, result: StudyResult) -> ReviewStudy:
    """Right after scoring: everything is already in memory, including matches for every slice."""
    scores = np.array([np.nan if s.skipped else s.score for s in result.slices], dtype=np.float64)
    return ReviewStudy(study_key, Path(output_dir), result.probability.astype(np.float32), scores, list(result.top_slices),
                       float(result.score), float(result.threshold), result.threshold_source, _read_report(Path(output_dir)),
                       volume, {s.index: [tuple(m) for m in s.matched] for s in result.slices if s.matched})


def from_output_dir(study_key: str, output_dir: Path, volume=None) -> ReviewStudy:
    """A finished study folder (``study.json`` present), with its source volume when available."""
    import nibabel as nib

    output_dir = Path(output_dir)
    report = _read_report(output_dir)
    prob_file = output_dir / PROBABILITY_NIFTI
    try:
        image = nib.load(str(prob_file))
        source = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises several types for damaged files
        raise InputError(f"{describe_path(prob_file.name)}: cannot read the anomaly map ({type(exc).__name__})") from exc
    if volume is not None:
        try:
            probability = volume.reorientation.to_canonical(source)
        except ValueError as exc:
            raise InputError(f"{describe_path(prob_file.name)}: the anomaly map does not match the study's geometry "
                             f"(shape {source.shape}); the results belong to another series") from exc
    else:
        from adaptclip_med.io.geometry import plan_reorientation

        axis = (report.get("scoring") or {}).get("preprocessing", {}).get("axis", "axial")
        probability = plan_reorientation(image.affine, source.shape, axis).to_canonical(source)
    scores = _slice_scores(output_dir / SLICES_CSV, probability.shape[0])
    matched = {int(t["index"]): [tuple(int(v) for v in pair) for pair in t.get("matched_reference_slices") or []]
               for t in report.get("top_slices") or []}
    return ReviewStudy(study_key, output_dir, probability.astype(np.float32), scores,
                       [int(t["index"]) for t in report.get("top_slices") or []], _score(report),
                       float(report.get("threshold", 0.5)), str(report.get("threshold_source", "")), report, volume,
                       {z: m for z, m in matched.items() if m})


def _score(report: dict[str, Any]) -> float:
    """The study score (nan when there is none: a study not comparable with its bank)."""
    value = report.get("score")
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _read_report(output_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((output_dir / STUDY_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{describe_path(output_dir.name)}: no readable study.json (scoring unfinished or failed)") from exc


def _array_index(row: dict[str, str]) -> int:
    """The 0-based array index of a slices.csv row: ``array_index`` (or ``index``, as written
    before slice numbering was unified), else the 1-based ``slice`` less one."""
    for column in ("array_index", "index"):
        if row.get(column) not in (None, ""):
            return int(row[column])
    return int(row["slice"]) - 1


def _slice_scores(path: Path, depth: int) -> np.ndarray:
    scores = np.full(depth, np.nan, dtype=np.float64)
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                index = _array_index(row)
                skipped = str(row.get("skipped", "")).strip().lower() in ("true", "1", "yes")
                if 0 <= index < depth and not skipped and row.get("score") not in (None, ""):
                    scores[index] = float(row["score"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{describe_path(path.name)}: unreadable per-slice scores ({type(exc).__name__})") from exc
    return scores
