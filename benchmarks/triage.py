"""Triage against full scoring (issue 17, item 2): lesion recall, study AUROC, slices scored, time.

Three parts, each saying what its figures mean:

* ``accuracy`` - phantom head CTs (demo/phantom.py) with lesions in three thickness classes
  (small: semi-axis 1.0-1.6 slices, medium 2.5-4, large 6-10) plus normal studies, scored by the
  deterministic intensity toy (tests/support/toy_methods.py, registered here only) against a bank of
  normal phantoms, once fully and once per triage stride.  Lesion recall = lesions (3-D connected
  components of the truth mask) touched by the predicted mask; AUROC = study scores, abnormal vs
  normal.  The toy stands in for a trained model because the tiny demo model is random; the
  figures say how triage's slice choice interacts with lesion thickness, not how good any CLIP
  method is.
* ``speed`` - the real AdaptCLIP path (tiny random backbone, so the network dominates per slice
  but in miniature): wall time of full vs triage scoring on one study, and the slice fraction.
* ``projection`` - the ViT-L/14@518 study time on this 2-core AVX2 CPU = 300 body slices x the
  measured scored fraction x 12.2 s/slice (benchmarks/results/methods_cpu.json, exact fp32).  A
  PROJECTION, not a measurement.
* ``overlap`` - whether decoding the next study while this one is scored could pay in batch:
  DICOM decode + windowing time per slice measured here, against the per-slice network time.

    python -m benchmarks.triage            # writes benchmarks/results/triage.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.utils.atomic import atomic_write_text
from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window
from adaptclip_med.volume.scoring import StudyResult, VolumeScorer
from adaptclip_med.volume.triage import TriagePlan

from benchmarks.measure import machine_description
from tests.support import toy_methods
from tests.support.phantoms import phantom_volume
from tests.support.triage import lesion_hits, write_normal_bank

RESULTS = Path(__file__).parent / "results" / "triage.json"
METHODS_CPU = Path(__file__).parent / "results" / "methods_cpu.json"
#: semi-axis ranges (slices along z; fraction of the image height in-plane)
LESION_CLASSES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "small": ((1.0, 1.6), (0.03, 0.05)),
    "medium": ((2.5, 4.0), (0.045, 0.075)),
    "large": ((6.0, 10.0), (0.07, 0.11)),
}
#: The toy's normal slices score 0 exactly, so the bank's calibrated pixel threshold is 0 (every
#: pixel masked); the benchmark sets one instead (z about 3 noise levels above the tolerance).
TOY_THRESHOLD = 0.3
STUDY_SLICES = 300
GOAL_MINUTES = 12.0


def phantom_set(abnormal_per_class: int, normals: int, shape: tuple[int, int, int], seed: int = 100) -> list[dict[str, Any]]:
    """Studies as dicts: volume, truth mask, lesion class (None = normal)."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom

    studies = []
    for c, (name, (rz, rxy)) in enumerate(LESION_CLASSES.items()):
        for i in range(abnormal_per_class):
            s = seed + 100 * c + i
            hu, mask = make_head_ct_phantom(s, shape, lesions=1 + i % 3, lesion_rz=rz, lesion_rxy=rxy)
            studies.append({"volume": phantom_volume(hu, f"{name} {i}"), "truth": mask.astype(bool), "class": name})
    for i in range(normals):
        hu, mask = make_head_ct_phantom(seed + 900 + i, shape)
        studies.append({"volume": phantom_volume(hu, f"normal {i}"), "truth": mask.astype(bool), "class": None})
    return studies


def auroc(scores: list[float], labels: list[int]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def evaluate(studies: list[dict[str, Any]], scorer: VolumeScorer) -> dict[str, Any]:
    """Score every study with ``scorer``; per-class recall, AUROC, scored fraction, time."""
    per_class: dict[str, list[int]] = {name: [0, 0] for name in LESION_CLASSES}
    scores, labels, scored, body, seconds, missed = [], [], 0, 0, 0.0, []
    for study in studies:
        started = time.perf_counter()
        result: StudyResult = scorer.score(study["volume"])
        seconds += time.perf_counter() - started
        scores.append(result.score)
        labels.append(int(study["class"] is not None))
        n_body = sum(1 for s in result.slices if s.skip_reason != "background (no body)")
        scored += len(result.scored())
        body += n_body
        if study["class"] is not None:
            hit, count = lesion_hits(study["truth"], result.mask)
            per_class[study["class"]][0] += hit
            per_class[study["class"]][1] += count
            if hit < count:
                missed.append(study["volume"].source_label)
    hits = sum(v[0] for v in per_class.values())
    total = sum(v[1] for v in per_class.values())
    return {"lesion_recall": round(hits / total, 4), "lesions": total,
            "recall_by_class": {k: {"recall": round(v[0] / v[1], 4), "lesions": v[1]} for k, v in per_class.items()},
            "study_auroc": round(auroc(scores, labels), 4), "scored_fraction": round(scored / body, 4),
            "seconds": round(seconds, 3), "studies_with_missed_lesions": missed}


def accuracy(strides: list[int], shape: tuple[int, int, int], abnormal_per_class: int, normals: int,
             work: Path) -> dict[str, Any]:
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.methods.registry import unregister_method

    toy_methods.register()
    try:
        method = load_method(MethodSpec(method=toy_methods.NAME, image_size=64))
        preprocessing = SlicePreprocessing(window=parse_window("brain"))
        from adaptclip_med.volume.bank.reader import ReferenceBank

        bank = ReferenceBank.open(write_normal_bank(work, 4, shape, method, preprocessing))
        studies = phantom_set(abnormal_per_class, normals, shape)
        rows: dict[str, Any] = {}
        threshold = None
        for stride in [None, *strides]:
            scorer = VolumeScorer(method, bank, None, batch_size=16, threshold=TOY_THRESHOLD,
                                  triage=TriagePlan(stride) if stride else None)
            threshold = scorer.threshold, scorer.threshold_source
            rows["full" if stride is None else f"stride_{stride}"] = evaluate(studies, scorer)
        bank.close()
    finally:
        unregister_method(toy_methods.NAME)
    full = rows["full"]
    for row in rows.values():
        row["recall_equal_to_full"] = row["lesion_recall"] == full["lesion_recall"]
    return {"method": toy_methods.NAME, "study_shape_zyx": list(shape), "abnormal_studies_per_class": abnormal_per_class,
            "normal_studies": normals, "lesion_classes_semi_axes": LESION_CLASSES, "bank_scans": 4,
            "threshold": threshold[0], "threshold_source": threshold[1], "runs": rows}


#: The random tiny model's maps exceed the default 0.5 nearly everywhere, which would make every
#: slice hot; at this threshold no pixel reaches it and refinement follows only the top-k slices,
#: which is what a trained model does on a normal study.
SPEED_THRESHOLD = 1.0
SPEED_REPEATS = 5


def speed(strides: list[int], slices: int, side: int, image_size: int) -> dict[str, Any]:
    """Real AdaptCLIP path (tiny random backbone): wall time full vs triage on one study."""
    import torch

    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.volume.options import ScoringOptions, SlicingOptions
    from adaptclip_med.volume.pipeline import model_for

    options = ScoringOptions(model=MethodSpec(backbone=BackboneSpec("adaptclip-tiny-vit", "random:0", offline=True),
                                              image_size=image_size),
                             slicing=SlicingOptions(window="brain", batch_size=8))
    method = model_for(options)
    hu, _ = __import__("adaptclip_med.demo.phantom", fromlist=["x"]).make_head_ct_phantom(7, (slices, side, side), lesions=2)
    volume = phantom_volume(hu, "speed study")
    runs = {}
    for stride in [None, *strides]:
        scorer = VolumeScorer(method, None, SlicePreprocessing(window=parse_window("brain")), batch_size=8,
                              threshold=SPEED_THRESHOLD, triage=TriagePlan(stride) if stride else None)
        scorer.score(volume)  # warm-up
        times = []
        for _ in range(SPEED_REPEATS):
            started = time.perf_counter()
            result = scorer.score(volume)
            times.append(time.perf_counter() - started)
        runs["full" if stride is None else f"stride_{stride}"] = {
            "seconds_median": round(float(np.median(times)), 3), "runs_s": [round(t, 3) for t in times],
            "scored_fraction": round(len(result.scored()) / slices, 4), "rounds": (result.triage or {}).get("slices_per_round")}
    full = runs["full"]["seconds_median"]
    for row in runs.values():
        row["speedup_vs_full"] = round(full / row["seconds_median"], 2)
    return {"method": "adaptclip (tiny random backbone, zero-shot; speed only: it detects nothing)",
            "study_shape_zyx": [slices, side, side], "image_size": image_size, "torch_threads": torch.get_num_threads(),
            "runs": runs,
            "threshold": SPEED_THRESHOLD,
            "note": ("the random model's maps exceed the default threshold 0.5 almost everywhere (every slice would be hot "
                     "and triage would score all of them, more slowly, in rounds); at threshold 1.0 nothing is above it "
                     "and only the top-3 slices are refined, as on a normal study with a trained model")}


def long_studies(strides: list[int], slices: int, side: int, work: Path, abnormal_per_class: int = 3,
                 normals: int = 3) -> dict[str, Any]:
    """Studies of the 300-slice length (per lesion class and normal), toy method, full vs
    triage: the scored fraction where refinement is a smaller share than on short phantoms."""
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.methods.registry import unregister_method
    from adaptclip_med.volume.bank.reader import ReferenceBank

    shape = (slices, side, side)
    toy_methods.register()
    try:
        method = load_method(MethodSpec(method=toy_methods.NAME, image_size=64))
        preprocessing = SlicePreprocessing(window=parse_window("brain"))
        bank = ReferenceBank.open(write_normal_bank(work / "long", 3, shape, method, preprocessing))
        studies = phantom_set(abnormal_per_class, normals, shape, seed=700)
        rows = {}
        for stride in [None, *strides]:
            scorer = VolumeScorer(method, bank, None, batch_size=16, threshold=TOY_THRESHOLD,
                                  triage=TriagePlan(stride) if stride else None)
            rows["full" if stride is None else f"stride_{stride}"] = evaluate(studies, scorer)
        bank.close()
    finally:
        unregister_method(toy_methods.NAME)
    per_slice = json.loads(METHODS_CPU.read_text())["methods"]["adaptclip"]["per_k"]["0"]["per_slice_s"]
    for row in rows.values():
        row["recall_equal_to_full"] = row["lesion_recall"] == rows["full"]["lesion_recall"]
        row["study_minutes_projected"] = round(STUDY_SLICES * row["scored_fraction"] * per_slice / 60.0, 1)
    return {"study_shape_zyx": list(shape),
            "studies": f"{abnormal_per_class} per lesion class (1-3 lesions each) + {normals} normal", "bank_scans": 3,
            "threshold": TOY_THRESHOLD, "runs": rows}


def projection(accuracy_rows: dict[str, Any]) -> dict[str, Any]:
    per_slice = json.loads(METHODS_CPU.read_text())["methods"]["adaptclip"]["per_k"]["0"]["per_slice_s"]
    rows = {}
    for name, row in accuracy_rows.items():
        minutes = STUDY_SLICES * row["scored_fraction"] * per_slice / 60.0
        rows[name] = {"scored_fraction": row["scored_fraction"], "study_minutes_projected": round(minutes, 1),
                      "meets_12_min": minutes <= GOAL_MINUTES, "recall_equal_to_full": row["recall_equal_to_full"]}
    ok = [n for n, r in rows.items() if r["meets_12_min"] and r["recall_equal_to_full"]]
    return {"kind": "PROJECTION (not measured): 300 body slices x scored fraction (toy phantom set) x per-slice time",
            "per_slice_s": per_slice, "per_slice_source": "methods_cpu.json adaptclip ViT-L-14-336@518 k=0 fp32, 2 AVX2 cores",
            "runs": rows, "meeting_goal_with_full_recall": ok}


def overlap(slices: int, side: int, per_slice_network_s: float, work: Path) -> dict[str, Any]:
    """Decode (DICOM read + windowing) time per slice, and the most overlapping it could save."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.slice_preprocessing import prepare_volume

    hu, _ = make_head_ct_phantom(11, (slices, side, side))
    folder = work / "decode_study"
    write_dicom_series(hu, folder, spacing=(1.0, 0.5, 0.5))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        volume, _ = load_study(Path(folder))
        prepare_volume(volume, SlicePreprocessing(window=parse_window("brain")))
        times.append(time.perf_counter() - started)
    per_slice = float(np.median(times)) / slices
    return {"decode_and_window_s_per_slice": round(per_slice, 5), "study_shape_zyx": [slices, side, side],
            "network_s_per_slice_vitl": per_slice_network_s,
            "max_saving_fraction_full": round(per_slice / (per_slice + per_slice_network_s), 5),
            "verdict": ("does not pay on 2 cores: decoding is a negligible share of a study, and both cores are already "
                        "busy with the network, so a decode thread would compete for them"),
            "runs_s": [round(t, 3) for t in times]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strides", default="2,3,4,6,8")
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--abnormal-per-class", type=int, default=4)
    parser.add_argument("--normals", type=int, default=6)
    parser.add_argument("--speed-image-size", type=int, default=224)
    parser.add_argument("--long-strides", default="2,3,4,6,8")
    parser.add_argument("--parts", default="accuracy,speed,long,overlap",
                        help="parts to (re)measure; the others are kept from an existing results file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    strides = [int(s) for s in args.strides.split(",")]
    parts = set(args.parts.split(","))
    started = time.time()
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result["machine_" + "_".join(sorted(parts))] = machine_description()
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        if "accuracy" in parts:
            result["accuracy"] = accuracy(strides, (args.slices, args.side, args.side), args.abnormal_per_class,
                                          args.normals, Path(tmp))
            result["projection"] = projection(result["accuracy"]["runs"])
        if "speed" in parts:
            result["speed"] = speed(strides, args.slices, args.side, args.speed_image_size)
        if "long" in parts:
            result["long_studies"] = long_studies([int(s) for s in args.long_strides.split(",")], STUDY_SLICES, 64,
                                                  Path(tmp))
        if "overlap" in parts:
            per_slice = json.loads(METHODS_CPU.read_text())["methods"]["adaptclip"]["per_k"]["0"]["per_slice_s"]
            result["overlap"] = overlap(40, 512, per_slice, Path(tmp))
    result["seconds_" + "_".join(sorted(parts))] = round(time.time() - started, 1)
    atomic_write_text(args.out, json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
