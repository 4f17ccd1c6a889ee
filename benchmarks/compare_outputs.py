"""Outputs of every method before and after a change, on the same inputs (the refactor proof).

Checks out REV (default b2af659, the commit before issue 21) into a temporary git worktree, then
runs the SAME runner in both trees, each importing its own ``adaptclip_med`` and using only entry
points both trees share (the ``adaptclip-med`` CLI app and ``python -m monai.bundle run``):

* per method (adaptclip, adaclip, winclip; tiny random backbones and random method weights saved
  to files): ``predict`` zero-shot and 2-shot (AdaCLIP has no reference branch: zero-shot only),
  ``references build`` of two normal phantoms, ``score`` of a phantom DICOM study against that
  bank and ``score --zero-shot``;
* the MONAI bundle's ``inference.json`` on a NIfTI and a DICOM phantom study, zero-shot for each
  method and against the AdaptCLIP bank (few-shot).

The inputs (weights, PNGs, phantoms) are prepared once, here, by ``tests.support`` and the demo
phantom, and both trees write into the same output path (moved aside after each run), so nothing
but the code differs.  Compared: anomaly maps and scores (.npz), reference bank tensors, the
probability and mask NIfTI, study scores, slices.csv (numbers and bytes), the bundle's
summary.json.  Writes max |difference| per method and output, and ``pass`` (every difference 0,
every file identical), to benchmarks/results/compare_outputs.json.

    python -m benchmarks.compare_outputs [--rev b2af659]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compare_outputs.json"
DEFAULT_REV = "b2af659"
METHODS = ("adaptclip", "adaclip", "winclip")
#: Methods with a reference (few-shot) branch: 2-shot ``predict`` runs for these.
FEW_SHOT = ("adaptclip", "winclip")

# Runs inside one tree (argv: output folder, inputs folder, tree root).  Only the CLI app and the
# bundle's config are used: both exist, with the same flags, in every tree compared.
_RUNNER = r'''
import json, os, subprocess, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
out, inputs, tree = (Path(a) for a in sys.argv[1:4])
import adaptclip_med
assert Path(adaptclip_med.__file__).resolve().is_relative_to(tree.resolve()), adaptclip_med.__file__
from typer.testing import CliRunner
from adaptclip_med.cli.main import app
plan = json.loads((inputs / "plan.json").read_text())
runner = CliRunner()
def run(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output)
study, q, r1, r2, n0, n1 = (inputs / n for n in ("study", "q.png", "r1.png", "r2.png", "n0", "n1"))
for method, setup in plan["methods"].items():
    model, folder = setup["model"], out / method
    run(["predict", q, "--out", folder / "zero.npz", *model])
    if setup["few_shot"]:
        run(["predict", q, "-r", r1, "-r", r2, "--out", folder / "two.npz", *model])
    run(["references", "build", "bank", n0, n1, "--window", "brain", "--banks-root", folder / "banks", *model])
    run(["score", study, "--references", folder / "banks" / "bank", "--out", folder / "study", *model])
    run(["score", study, "--zero-shot", "--window", "brain", "--out", folder / "study_zero", *model])
bundle = tree / "bundles" / "adaptclip_med"
for name, settings in plan["bundle"].items():
    args = ["run", "--config_file", str(bundle / "configs" / "inference.json"), "--dataset_dir", str(inputs / "bundle_studies"),
            "--output_dir", str(out / "bundle" / name)]
    for key, value in settings.items():
        args += [f"--{key}", str(out / value[len("OUT/"):]) if str(value).startswith("OUT/") else str(value)]
    done = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=bundle, env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-8000:]
'''


# ---------------------------------------------------------------------------------- inputs
def _model_args(folder: Path) -> dict[str, list[str]]:
    """Each method's CLI model flags on its tiny random backbone and random method weights."""
    common = ["--offline", "--device", "cpu"]
    return {
        "adaptclip": ["--backbone", "adaptclip-tiny-vit", "--backbone-weights", str(folder / "adaptclip_clip.pt"),
                      "--adapters", str(folder / "adaptclip_adapters.safetensors"), "--image-size", "56", *common],
        "adaclip": ["--method", "adaclip", "--backbone", "adaclip-tiny-vit", "--backbone-weights", str(folder / "adaclip_clip.pt"),
                    "--adapters", str(folder / "adaclip_prompts.pth"), "--image-size", "56", "--class-name", "brain", *common],
        "winclip": ["--method", "winclip", "--backbone", "winclip-tiny-vit", "--backbone-weights", str(folder / "winclip_clip.pt"),
                    "--image-size", "84", "--class-name", "brain", *common],
    }


def _bundle_plan(folder: Path) -> dict[str, dict[str, Any]]:
    """Bundle overrides (Fire parses the values; MONAI drops a plain None, so None is the expression
    ``$None``; ``OUT/`` is the tree's output folder)."""
    base = {"offline": True, "window": "brain", "zero_shot": True, "slice_batch_size": 4}
    return {
        "adaptclip_zero": {**base, "method": "adaptclip", "backbone": "adaptclip-tiny-vit", "image_size": 56,
                           "backbone_weights": str(folder / "adaptclip_clip.pt"),
                           "adapters": str(folder / "adaptclip_adapters.safetensors")},
        "adaptclip_bank": {**base, "method": "adaptclip", "backbone": "adaptclip-tiny-vit", "image_size": 56,
                           "backbone_weights": str(folder / "adaptclip_clip.pt"), "window": "$None", "zero_shot": False,
                           "adapters": str(folder / "adaptclip_adapters.safetensors"),
                           "reference_bank": "OUT/adaptclip/banks/bank"},
        "adaclip_zero": {**base, "method": "adaclip", "class_name": "brain", "backbone": "adaclip-tiny-vit", "image_size": 56,
                         "backbone_weights": str(folder / "adaclip_clip.pt"), "adapters": str(folder / "adaclip_prompts.pth")},
        "winclip_zero": {**base, "method": "winclip", "class_name": "brain", "backbone": "winclip-tiny-vit", "image_size": 84,
                         "backbone_weights": str(folder / "winclip_clip.pt"), "adapters": "$None"},
    }


def prepare_inputs(folder: Path) -> None:
    """Tiny backbones and random method weights (tests.support), PNGs, phantom DICOM studies, a
    NIfTI + DICOM bundle data set, and the plan both trees follow."""
    from PIL import Image

    from adaptclip_med.demo.phantom import make_demo_dataset, make_head_ct_phantom, write_dicom_series
    from tests.support.phantoms import write_nifti_study
    from tests.support.tiny_models import (save_random_adaclip_weights, save_random_adaptclip_adapters, save_random_clip,
                                           save_tiny_weights)

    save_tiny_weights(folder / "adaptclip_clip.pt")
    save_random_adaptclip_adapters(folder / "adaptclip_clip.pt", folder / "adaptclip_adapters.safetensors")
    save_random_clip("adaclip-tiny-vit", folder / "adaclip_clip.pt", seed=0)
    save_random_adaclip_weights(folder / "adaclip_clip.pt", folder / "adaclip_prompts.pth")
    save_random_clip("winclip-tiny-vit", folder / "winclip_clip.pt", seed=11)
    rng = np.random.default_rng(0)
    for name in ("q", "r1", "r2"):
        Image.fromarray(rng.integers(0, 255, (70, 70), dtype=np.uint8)).save(folder / f"{name}.png")
    data = make_demo_dataset(folder / "phantoms", seed=0, n_references=2, shape=(6, 48, 48))
    shutil.copytree(data.study_dir, folder / "study")
    for i, reference in enumerate(data.reference_dirs[:2]):
        shutil.copytree(reference, folder / f"n{i}")
    studies = folder / "bundle_studies"
    studies.mkdir()
    write_nifti_study(studies / "head_nifti.nii.gz", seed=3, lesions=2)
    (studies / "head_nifti_mask.nii.gz").unlink()
    hu, _ = make_head_ct_phantom(4, (5, 48, 48), lesions=1)
    write_dicom_series(hu, studies / "head_dicom")
    plan = {"methods": {m: {"model": args, "few_shot": m in FEW_SHOT} for m, args in _model_args(folder).items()},
            "bundle": _bundle_plan(folder)}
    (folder / "plan.json").write_text(json.dumps(plan, indent=1))


def run_tree(tree: Path, out: Path, inputs: Path, kept: Path) -> float:
    """The runner in ``tree`` (its own package first on the path, one thread, no progress bars),
    writing to ``out``, then moved to ``kept`` so both trees write to the same path."""
    out.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", ADAPTCLIP_MED_PROGRESS="0", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONWARNINGS="ignore")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _RUNNER, str(out), str(inputs), str(tree)], cwd=tree, env=env, check=True)
    out.rename(kept)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------- comparing
def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    both_nan = np.isnan(a) & np.isnan(b)
    return float(np.nanmax(np.where(both_nan, 0.0, np.abs(a - b)))) if not (np.isnan(a) ^ np.isnan(b)).any() else float("inf")


def _nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(str(path)).dataobj)


def _csv_difference(before: Path, after: Path) -> float:
    """Max |diff| over the numeric cells of two CSV files; inf if the text cells or shape differ."""
    rows_a, rows_b = list(csv.reader(before.open())), list(csv.reader(after.open()))
    if len(rows_a) != len(rows_b) or any(len(a) != len(b) for a, b in zip(rows_a, rows_b)):
        return float("inf")
    largest = 0.0
    for row_a, row_b in zip(rows_a, rows_b):
        for a, b in zip(row_a, row_b):
            try:
                largest = max(largest, _max_abs(np.float64(a), np.float64(b)))
            except ValueError:
                if a != b:
                    return float("inf")
    return largest


def _bank_difference(before: Path, after: Path) -> float:
    """Max |diff| over every tensor of the bank's safetensors files; inf if their names differ."""
    from safetensors.numpy import load_file

    files_a = sorted(p.relative_to(before) for p in before.rglob("*.safetensors"))
    files_b = sorted(p.relative_to(after) for p in after.rglob("*.safetensors"))
    if files_a != files_b or not files_a:
        return float("inf")
    largest = 0.0
    for name in files_a:
        a, b = load_file(str(before / name)), load_file(str(after / name))
        if a.keys() != b.keys():
            return float("inf")
        largest = max([largest, *(_max_abs(a[k], b[k]) for k in a)])
    return largest


def compare_study(before: Path, after: Path) -> dict[str, Any]:
    """A scored study folder: probability and mask NIfTI, study score, slices.csv."""
    score_a = json.loads((before / "study.json").read_text())["score"]
    score_b = json.loads((after / "study.json").read_text())["score"]
    return {"probability map": _max_abs(_nifti(before / "anomaly_probability.nii.gz"), _nifti(after / "anomaly_probability.nii.gz")),
            "mask": _max_abs(_nifti(before / "anomaly_mask.nii.gz"), _nifti(after / "anomaly_mask.nii.gz")),
            "study score": _max_abs(np.float64(score_a), np.float64(score_b)),
            "slices.csv": _csv_difference(before / "slices.csv", after / "slices.csv"),
            "slices.csv identical": (before / "slices.csv").read_bytes() == (after / "slices.csv").read_bytes()}


def compare_method(before: Path, after: Path, few_shot: bool) -> dict[str, Any]:
    diffs: dict[str, Any] = {}
    for name in ("zero.npz", "two.npz") if few_shot else ("zero.npz",):
        a, b = np.load(before / name), np.load(after / name)
        mode = name.split(".")[0].replace("zero", "zero-shot").replace("two", "2-shot")
        diffs[f"predict {mode} map"] = _max_abs(a["anomaly_map"], b["anomaly_map"])
        diffs[f"predict {mode} score"] = _max_abs(a["score"], b["score"])
    diffs["reference bank tensors"] = _bank_difference(before / "banks" / "bank", after / "banks" / "bank")
    for study in ("study", "study_zero"):
        label = "score against the bank" if study == "study" else "score zero-shot"
        diffs.update({f"{label}: {k}": v for k, v in compare_study(before / study, after / study).items()})
    return diffs


def compare_bundle(before: Path, after: Path) -> dict[str, Any]:
    """summary.json (study keys, status, scores) and every study folder the bundle wrote."""
    rows_a = json.loads((before / "summary.json").read_text())["studies"]
    rows_b = json.loads((after / "summary.json").read_text())["studies"]
    keys_a, keys_b = [(r["study"], r["status"]) for r in rows_a], [(r["study"], r["status"]) for r in rows_b]
    diffs: dict[str, Any] = {"summary studies identical": keys_a == keys_b and all(s == "done" for _, s in keys_a),
                             "summary scores": _max_abs([r["score"] for r in rows_a], [r["score"] for r in rows_b])}
    for study, _ in keys_a:
        if (before / study).is_dir():
            diffs.update({f"{study}: {k}": v for k, v in compare_study(before / study, after / study).items()})
    return diffs


def passed(diffs: dict[str, Any]) -> bool:
    return all(v is True if isinstance(v, bool) else v == 0.0 for v in diffs.values())


def _readable(diffs: dict[str, Any]) -> dict[str, Any]:
    """inf (shapes, NaN placement or text cells differ) as words: JSON has no infinity."""
    return {k: "differs (shape, NaN placement or text)" if v == float("inf") else v for k, v in diffs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default=DEFAULT_REV, help=f"the revision to compare against (default {DEFAULT_REV})")
    parser.add_argument("--keep", type=Path, help="keep inputs and both trees' outputs in this folder (to inspect a difference)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.measure import machine_description, write_results

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="adaptclip-compare-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.rev], cwd=ROOT, check=True, capture_output=True)
        try:
            (work / "inputs").mkdir()
            prepare_inputs(work / "inputs")
            seconds = {"before": run_tree(base, work / "out", work / "inputs", work / "before"),
                       "after": run_tree(ROOT, work / "out", work / "inputs", work / "after")}
            plan = json.loads((work / "inputs" / "plan.json").read_text())
            results = {m: compare_method(work / "before" / m, work / "after" / m, plan["methods"][m]["few_shot"]) for m in METHODS}
            results.update({f"bundle {name}": compare_bundle(work / "before" / "bundle" / name, work / "after" / "bundle" / name)
                            for name in plan["bundle"]})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    failed = sorted(name for name, diffs in results.items() if not passed(diffs))
    record = {"before": args.rev, "after": f"{head} (+ working tree)", "pass": not failed, "failed": failed,
              "max_abs_difference": {name: _readable(diffs) for name, diffs in results.items()},
              "seconds": {**{k: round(v, 1) for k, v in seconds.items()}, "total": round(time.perf_counter() - started, 1)},
              "machine": machine_description()}
    write_results(RESULTS, record, indent=2)
    print(json.dumps({k: record[k] for k in ("before", "after", "pass", "failed", "seconds")}, indent=2))
    sys.exit(0 if not failed else 1)


if __name__ == "__main__":
    main()
