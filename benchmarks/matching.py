"""Which reference-slice matching should be the default? Measured on the demo phantoms.

For each phantom seed: build a bank from normal phantoms, score a study with lesions and a held-out
normal study with 'position' and 'retrieval' matching, and report slice-level AUROC (slices that
contain lesion voxels vs all other body slices of both studies), voxel AUROC on the lesion study,
and the study-score margin (lesion study minus normal study).  The packaged demo model (formula
backbone + adapters trained on synthetic abdomen phantoms): the figures compare strategies on
identical features; they say nothing about diagnostic performance.

    python benchmarks/matching.py --seeds 0 1 2 --out benchmarks/results/matching.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from benchmarks.measure import write_results

os.environ.setdefault("ADAPTCLIP_MED_PROGRESS", "0")


def measure(seed: int, references: int) -> dict:
    from adaptclip_med.demo.phantom import make_demo_dataset
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.pipeline import make_scorer, model_for
    from adaptclip_med.volume.bank_builder import build_reference_bank

    work = Path(tempfile.mkdtemp(prefix="matching-"))
    data = make_demo_dataset(work / "data", seed=seed, n_references=references + 1)
    options = demo_options()
    loaded = model_for(options)
    bank = build_reference_bank("bench", data.reference_dirs[:references], loaded, options.preprocessing(), work / "banks",
                                calibrate=False)
    truth = np.asarray(nib.load(str(data.ground_truth_nifti)).dataobj) > 0
    lesion_volume, _ = load_study(data.study_dir)
    normal_volume, _ = load_study(data.reference_dirs[references])
    rows = {}
    for match in ("position", "retrieval"):
        scorer = make_scorer(demo_options(bank).with_references(match=match), loaded)
        started = time.perf_counter()
        lesion = scorer.score(lesion_volume)
        normal = scorer.score(normal_volume)
        seconds = time.perf_counter() - started
        truth_zyx = truth if truth.shape == lesion.probability.shape else None
        lesion_slices = truth.reshape(truth.shape[0], -1).any(axis=1)
        labels, scores = [], []
        for result, positives in ((lesion, lesion_slices), (normal, np.zeros(len(normal.slices), bool))):
            for s in result.scored():
                labels.append(int(positives[s.index]))
                scores.append(s.score)
        rows[match] = {
            "slice_auroc": float(roc_auc_score(labels, scores)),
            "voxel_auroc": float(roc_auc_score(truth_zyx.ravel(), lesion.probability.ravel())) if truth_zyx is not None else None,
            "study_score_lesions": lesion.score, "study_score_normal": normal.score,
            "study_margin": lesion.score - normal.score, "seconds_two_studies": seconds,
        }
    rows["fp16_storage"] = fp16_storage_effect(data, references, loaded, bank, lesion_volume, work)
    return rows


def fp16_storage_effect(data, references: int, loaded, bank: Path, volume, work: Path) -> dict:
    """Scores of the lesion study with the bank's float16 features vs the same bank stored in
    float32 (position matching): is halving the bank's size harmless?"""
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.bank_builder import build_reference_bank
    from adaptclip_med.volume.pipeline import make_scorer

    options = demo_options()
    loaded.bank_storage_dtype = torch.float32  # this instance only: the method's banks store float32 rows
    try:
        bank32 = build_reference_bank("bench32", data.reference_dirs[:references], loaded,
                                      options.preprocessing(), work / "banks32", calibrate=False)
    finally:
        del loaded.bank_storage_dtype
    half = make_scorer(demo_options(bank).with_references(match="position"), loaded).score(volume)
    full = make_scorer(demo_options(bank32).with_references(match="position"), loaded).score(volume)
    slice_diff = max(abs(a.score - b.score) for a, b in zip(half.scored(), full.scored()))
    diff = np.abs(half.probability - full.probability)
    truth = np.asarray(nib.load(str(data.ground_truth_nifti)).dataobj) > 0
    return {"max_abs_map_diff": float(diff.max()), "fraction_over_1e-3": float((diff > 1e-3).mean()),
            "fraction_over_1e-2": float((diff > 1e-2).mean()),
            "voxel_auroc_fp16": float(roc_auc_score(truth.ravel(), half.probability.ravel())),
            "voxel_auroc_fp32": float(roc_auc_score(truth.ravel(), full.probability.ravel())),
            "mask_voxels_flipped_at_0.5": int(((half.probability > 0.5) != (full.probability > 0.5)).sum()),
            "max_abs_slice_score_diff": float(slice_diff), "study_score_diff": float(abs(half.score - full.score)),
            "bank_bytes_fp16": _folder_bytes(bank), "bank_bytes_fp32": _folder_bytes(bank32)}


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--references", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/matching.json"))
    args = parser.parse_args()
    per_seed = {seed: measure(seed, args.references) for seed in args.seeds}
    summary = {}
    for match in ("position", "retrieval"):
        for key in ("slice_auroc", "voxel_auroc", "study_margin"):
            values = [per_seed[s][match][key] for s in args.seeds]
            summary[f"{match}.{key}.median"] = float(np.median(values))
            summary[f"{match}.{key}.range"] = [float(min(values)), float(max(values))]
    for key in ("max_abs_map_diff", "fraction_over_1e-3", "mask_voxels_flipped_at_0.5"):
        summary[f"fp16_storage.{key}.max"] = max(per_seed[s]["fp16_storage"][key] for s in args.seeds)
    summary["fp16_storage.voxel_auroc_change.max"] = max(
        abs(per_seed[s]["fp16_storage"]["voxel_auroc_fp16"] - per_seed[s]["fp16_storage"]["voxel_auroc_fp32"]) for s in args.seeds)
    summary["retrieval_better_slice_auroc_seeds"] = sum(
        per_seed[s]["retrieval"]["slice_auroc"] > per_seed[s]["position"]["slice_auroc"] for s in args.seeds)
    result = {"what": "reference-slice matching on demo phantoms (packaged demo model)", "seeds": args.seeds,
              "references": args.references, "per_seed": per_seed, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, result)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
