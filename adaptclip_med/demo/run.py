"""The built-in demo: synthetic CT-like head phantoms through the whole pipeline, offline.

It writes phantom DICOM series (one study with three lesions - hyperdense, hypodense, mass with
mass effect - normal references and a held-out normal study), builds a reference bank with the
DEMO MODEL (``--adapters demo``: a formula-weighted tiny ViT and adapters trained by the
project's trainer on synthetic ABDOMEN phantoms, a different anatomy), scores both test studies,
compares the result with the ground truth lesion by lesion and writes display overlays, a score
plot and an HTML report.  Detection comes from the model's maps and the bank's calibrated
threshold only; the label map is read afterwards, to grade.  NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.demo.bank import ensure_demo_bank
from adaptclip_med.methods.base import MethodSpec
from adaptclip_med.methods.adaptclip.demo_weights import DEMO_MODEL, DEMO_WINDOW
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.utils.atomic import atomic_write_text
from adaptclip_med.volume.options import ReferenceOptions, ScoringOptions, SlicingOptions
from adaptclip_med.volume.pipeline import make_scorer, model_for, open_bank_for
from adaptclip_med.volume.scoring import VolumeScorer
from adaptclip_med.volume.study_run import StudyOutputs, run_study

DEMO_LABEL = ("DEMONSTRATION ONLY: synthetic phantoms, demo model trained on SYNTHETIC data "
              "(formula-weighted tiny ViT + adapters) - no diagnostic value")
__all__ = ["DEMO_LABEL", "DemoResult", "LesionReport", "demo_options",
           "lesion_level_result", "run_demo"]
_KIND = {1: "hyperdense", 2: "hypodense", 3: "mass"}


THRESHOLD_SOURCE = "highest map value on the bank's normal scans, leave-one-scan-out"


def normal_maximum(calibration: dict[str, Any] | None) -> float | None:
    """The demo's pixel threshold: the highest map value the bank's leave-one-scan-out
    calibration saw on normal anatomy (stricter than the bank's default 99.9 % quantile, so a
    normal study is expected to show no region at all); None for a bank calibrated before it
    was recorded (the scorer then uses the quantile).  ``calibration``: the bank's."""
    value = (calibration or {}).get("pixel_max")
    return None if value is None else float(value)


def demo_options(bank: Path | None = None) -> ScoringOptions:
    """Scoring options of the demo model (``--adapters demo --window brain``)."""
    return ScoringOptions(model=MethodSpec(backbone=BackboneSpec("", None, offline=True), weights=DEMO_MODEL),
                          references=ReferenceOptions(bank=str(bank) if bank else None),
                          slicing=SlicingOptions(window=DEMO_WINDOW))


@dataclass
class LesionReport:
    lesions: int
    detected: int
    false_positive_components: int
    dice: float
    per_lesion: list[dict]


def lesion_level_result(probability: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> LesionReport:
    """A lesion counts as detected when the predicted mask overlaps it; predicted components that
    touch no lesion are false positives; Dice over voxels, overall and per lesion (the lesion
    against the predicted components that touch it)."""
    from scipy import ndimage

    labels, count = ndimage.label(truth > 0)
    predicted, predicted_count = ndimage.label(mask)
    per_lesion = []
    for lesion in range(1, count + 1):
        region = labels == lesion
        touching = np.unique(predicted[region & mask])
        found = np.isin(predicted, touching[touching > 0])
        dice = 2 * float((found & region).sum()) / max(float(found.sum() + region.sum()), 1.0)
        kind = int(np.bincount(truth[region].astype(np.int64)).argmax())
        per_lesion.append({"lesion": lesion, "kind": _KIND.get(kind, str(kind)), "voxels": int(region.sum()),
                           "slices": [int(z) for z in np.flatnonzero(region.any(axis=(1, 2)))],
                           "detected": bool((mask & region).any()), "dice": dice,
                           "peak_probability": float(probability[region].max())})
    false_positive = sum(1 for c in range(1, predicted_count + 1) if not (truth[predicted == c] > 0).any())
    intersection = float((mask & (truth > 0)).sum())
    dice = 2 * intersection / max(float(mask.sum() + (truth > 0).sum()), 1.0)
    return LesionReport(count, sum(p["detected"] for p in per_lesion), false_positive, dice, per_lesion)


@dataclass
class DemoResult:
    out_dir: Path
    abnormal: StudyOutputs
    normal: StudyOutputs
    lesions: LesionReport
    normal_false_positive_components: int = 0
    seconds: float = 0.0
    report: Path | None = None
    figures: dict[str, Path] = field(default_factory=dict)


def _score(scorer: VolumeScorer, study: Path, out_dir: Path) -> StudyOutputs:
    from adaptclip_med.io.loader import load_study

    volume, _ = load_study(study)
    return run_study(volume, scorer, out_dir)


def _figures(out_dir: Path, result, truth: np.ndarray, lesions: LesionReport, slice_threshold: float | None) -> dict[str, Path]:
    from adaptclip_med.demo.figures import save_demo_score_plot, save_display_overlay

    scores = [float("nan") if s.skipped else s.score for s in result.slices]
    lesion_slices = sorted({z for p in lesions.per_lesion for z in p["slices"]})
    figures = {"score_plot": save_demo_score_plot(out_dir / "demo_score_plot.png", scores, lesion_slices, slice_threshold,
                                                  "slice scores, study with lesions (synthetic)")}
    vmax = max(float(result.probability.max()), 2 * float(result.threshold))
    shown = sorted({p["slices"][len(p["slices"]) // 2] for p in lesions.per_lesion})
    for z in shown:
        figures[f"overlay_slice{z + 1:03d}"] = save_display_overlay(out_dir / f"demo_overlay_slice{z + 1:03d}.png",
                                                                result.prepared.slices01[z], result.probability[z], truth[z],
                                                                float(result.threshold), vmax, z, scores[z])
    return figures


def run_demo(out_dir: Path, seed: int = 0, references: int = 3, slices: int = 16, size: int = 256) -> DemoResult:
    """Make the phantoms, build the bank, score, grade and write the summary, figures and report."""
    from scipy import ndimage

    from adaptclip_med.demo.dataset import make_ct_demo_dataset
    from adaptclip_med.demo.report import write_demo_report

    started = time.perf_counter()
    out_dir = Path(out_dir)
    data = make_ct_demo_dataset(out_dir / "data", seed=seed, normals=references + 1, slices=slices, size=size,
                                truth_path=out_dir / "ground_truth_labels.nii.gz")
    bank_scans, held_out_normal = data.normal_dirs[:references], data.normal_dirs[references]
    options = demo_options()
    method = model_for(options)
    bank = ensure_demo_bank(bank_scans, method, options.preprocessing(), out_dir / "banks", rebuild=True)
    bank_handle = open_bank_for(method, bank)  # the one read of the bank for the whole run
    scorer = make_scorer(demo_options(bank).with_output(threshold=normal_maximum(bank_handle.calibration)), method, bank_handle)
    abnormal = _score(scorer, data.study_dir, out_dir / "results" / "study_with_lesions")
    normal = _score(scorer, held_out_normal, out_dir / "results" / "normal_study")
    abnormal_result, normal_result = abnormal.result, normal.result
    truth = data.labels  # read only now, to grade: the scorer never saw it
    lesions = lesion_level_result(abnormal_result.probability, abnormal_result.mask, truth)
    normal_fp = int(ndimage.label(normal_result.mask)[1])
    slice_threshold = (bank_handle.calibration or {}).get("normal_slice_score_max")
    figures = _figures(out_dir, abnormal_result, truth, lesions, slice_threshold)
    seconds = time.perf_counter() - started
    summary = {"label": DEMO_LABEL, "model": method.describe(), "study_score_with_lesions": abnormal.score,
               "study_score_normal": normal.score, "lesions": lesions.lesions, "lesions_detected": lesions.detected,
               "false_positive_components": lesions.false_positive_components,
               "normal_false_positive_components": normal_fp, "voxel_dice": lesions.dice,
               "pixel_threshold": float(abnormal_result.threshold), "threshold_source": THRESHOLD_SOURCE,
               "per_lesion": lesions.per_lesion, "seconds": seconds}
    overlays = [(f"slice {name[-3:].lstrip('0') or '0'}: heat map, model mask (cyan), ground truth (lime)", path)
                for name, path in figures.items() if name.startswith("overlay")]
    report = write_demo_report(out_dir / "demo_report.html", summary, figures["score_plot"], overlays)
    summary["report"] = str(report)
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    atomic_write_text(out_dir / "demo_summary.json", json.dumps(summary, indent=1))
    return DemoResult(out_dir, abnormal, normal, lesions, normal_fp, seconds, report, figures)

