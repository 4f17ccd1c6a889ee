"""The built-in demo: synthetic phantom head CTs through the whole pipeline, offline.

It writes phantom DICOM series (one study with lesions, normal references and a held-out normal
study), builds a reference bank with the TINY RANDOM-INITIALISED demonstration backbone, scores
both test studies and compares the result with the ground truth lesion by lesion.  It proves the
plumbing (DICOM in, NIfTI/SEG/CSV/JSON/PNG out); the network has NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptclip_med.volume.options import ModelOptions, ReferenceOptions, ScoringOptions, SlicingOptions
from adaptclip_med.volume.pipeline import StudyOutputs, make_scorer, model_for, score_study
from adaptclip_med.demo.bank import ensure_demo_bank

DEMO_LABEL = "DEMONSTRATION ONLY: tiny random-initialised backbone, untrained adapters, synthetic phantoms - no diagnostic value"
DEMO_IMAGE_SIZE = 224
DEMO_WINDOW = "brain"


def demo_options(bank: Path | None = None) -> ScoringOptions:
    return ScoringOptions(model=ModelOptions(backbone="adaptclip-tiny-vit", backbone_weights="random:0", adapters=None,
                                             image_size=DEMO_IMAGE_SIZE, offline=True),
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
    touch no lesion are false positives; Dice over voxels."""
    from scipy import ndimage

    labels, count = ndimage.label(truth > 0)
    per_lesion = []
    for lesion in range(1, count + 1):
        region = labels == lesion
        per_lesion.append({"lesion": lesion, "voxels": int(region.sum()), "detected": bool((mask & region).any()),
                           "peak_probability": float(probability[region].max())})
    predicted, predicted_count = ndimage.label(mask)
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


def run_demo(out_dir: Path, seed: int = 0, references: int = 3) -> DemoResult:
    import nibabel as nib

    from adaptclip_med.demo.phantom import make_demo_dataset

    out_dir = Path(out_dir)
    data = make_demo_dataset(out_dir / "data", seed=seed, n_references=references + 1)
    bank_scans, held_out_normal = data.reference_dirs[:references], data.reference_dirs[references]
    options = demo_options()
    method = model_for(options)
    bank = ensure_demo_bank(bank_scans, method, options.preprocessing(), out_dir / "banks", rebuild=True)
    scorer = make_scorer(demo_options(bank), method)
    abnormal = score_study(data.study_dir, out_dir / "results" / "study_with_lesions", scorer)
    normal = score_study(held_out_normal, out_dir / "results" / "normal_study", scorer)
    truth = np.asarray(nib.load(str(data.ground_truth_nifti)).dataobj)
    probability = np.asarray(nib.load(str(abnormal.files["probability_nifti"])).dataobj)
    mask = np.asarray(nib.load(str(abnormal.files["mask_nifti"])).dataobj) > 0
    lesions = lesion_level_result(probability, mask, truth)
    summary = {"label": DEMO_LABEL, "study_score_with_lesions": abnormal.score, "study_score_normal": normal.score,
               "lesions": lesions.lesions, "lesions_detected": lesions.detected,
               "false_positive_components": lesions.false_positive_components, "voxel_dice": lesions.dice,
               "per_lesion": lesions.per_lesion}
    (out_dir / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    return DemoResult(out_dir, abnormal, normal, lesions)
