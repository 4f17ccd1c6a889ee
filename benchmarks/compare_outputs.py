"""AdaptCLIP outputs before and after a change, on the same inputs (the method-contract proof).

Checks out REV (default: the last commit before the method contract) into a temporary git
worktree, then runs the SAME script in both trees (each importing its own ``adaptclip_med``):
``predict`` zero- and 2-shot on PNGs, and ``score`` of a phantom DICOM study against a reference
bank, with a tiny random backbone and random adapters saved to files.  Compares the anomaly maps
and scores (``predict`` .npz, the study's NIfTI probability map, slices.csv, study score) and
writes the largest differences to benchmarks/results/compare_outputs.json.

    python -m benchmarks.compare_outputs [--rev 5e80743]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.measure import write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compare_outputs.json"

# Runs inside one tree: writes outputs under argv[1]; only uses APIs both versions have (the CLI).
_RUNNER = r'''
import os, sys, shutil
from pathlib import Path
import numpy as np, torch
from PIL import Image
os.environ["HF_HUB_OFFLINE"] = "1"; os.environ["ADAPTCLIP_MED_PROGRESS"] = "0"
torch.set_num_threads(2)
out = Path(sys.argv[1]); inputs = Path(sys.argv[2])
from typer.testing import CliRunner
from adaptclip_med.cli.main import app
runner = CliRunner()
def run(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
model = ["--backbone", "adaptclip-tiny-vit", "--backbone-weights", str(inputs / "tiny.pt"), "--adapters", str(inputs / "adapters.safetensors"),
         "--image-size", "56", "--offline", "--device", "cpu"]
run(["predict", str(inputs / "q.png"), "--out", str(out / "zero.npz"), *model])
run(["predict", str(inputs / "q.png"), "-r", str(inputs / "r1.png"), "-r", str(inputs / "r2.png"), "--out", str(out / "two.npz"), *model])
run(["references", "build", "bank", str(inputs / "n0"), str(inputs / "n1"), "--window", "brain", "--banks-root", str(out / "banks"), *model])
run(["score", str(inputs / "study"), "--references", str(out / "banks" / "bank"), "--out", str(out / "study"), *model])
'''


def _prepare_inputs(folder: Path) -> None:
    """Tiny backbone weights, random adapters (non-trivial BN statistics), PNGs and phantom scans."""
    import torch
    from PIL import Image

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/conftest imports its helpers as top-level modules
    from tests.conftest import randomise_adapter_state, save_tiny_weights

    from adaptclip_med.demo.phantom import make_demo_dataset
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.methods.adaptclip.checkpoints import build_model, save_adapters

    save_tiny_weights(folder / "tiny.pt")
    loaded = build_model(BackboneSpec("adaptclip-tiny-vit", str(folder / "tiny.pt"), offline=True), None, 56)
    randomise_adapter_state(loaded.model)
    save_adapters(loaded.model, folder / "adapters.safetensors")
    rng = np.random.default_rng(0)
    for name in ("q", "r1", "r2"):
        Image.fromarray(rng.integers(0, 255, (70, 70), dtype=np.uint8)).save(folder / f"{name}.png")
    data = make_demo_dataset(folder / "phantoms", seed=0, n_references=2, shape=(6, 48, 48))
    import shutil

    shutil.copytree(data.study_dir, folder / "study")
    for i, ref in enumerate(data.reference_dirs[:2]):
        shutil.copytree(ref, folder / f"n{i}")
    del torch


def _run_tree(tree: Path, out: Path, inputs: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", _RUNNER, str(out), str(inputs)], cwd=tree, check=True)


def _compare(before: Path, after: Path) -> dict[str, float]:
    import nibabel as nib

    diffs = {}
    for name in ("zero.npz", "two.npz"):
        a, b = np.load(before / name), np.load(after / name)
        diffs[f"predict {name} map"] = float(np.abs(a["anomaly_map"] - b["anomaly_map"]).max())
        diffs[f"predict {name} score"] = float(abs(float(a["score"]) - float(b["score"])))
    pa = np.asarray(nib.load(str(before / "study" / "anomaly_probability.nii.gz")).dataobj)
    pb = np.asarray(nib.load(str(after / "study" / "anomaly_probability.nii.gz")).dataobj)
    diffs["score study probability map"] = float(np.abs(pa - pb).max())
    ja = json.loads((before / "study" / "study.json").read_text())
    jb = json.loads((after / "study" / "study.json").read_text())
    diffs["score study score"] = abs(ja["score"] - jb["score"])
    diffs["slices.csv identical"] = float((before / "study" / "slices.csv").read_bytes() == (after / "study" / "slices.csv").read_bytes())
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="5e80743", help="the revision to compare against")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adaptclip-compare-") as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.rev], cwd=ROOT, check=True, capture_output=True)
        try:
            (tmp / "inputs").mkdir()
            _prepare_inputs(tmp / "inputs")
            _run_tree(base, tmp / "before", tmp / "inputs")
            _run_tree(ROOT, tmp / "after", tmp / "inputs")
            diffs = _compare(tmp / "before", tmp / "after")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {"before": args.rev, "after": f"{head} (+ working tree)", "max_abs_difference": diffs}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS, record, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
