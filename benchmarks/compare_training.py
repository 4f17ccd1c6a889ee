"""Trained weights before and after a change, same seed, same data (the training-loop proof).

Extracts REV (``git archive``, no worktree) into a temporary folder, then runs the SAME script in
both trees (each importing its own ``adaptclip_med``): ``train`` AdaptCLIP 2 epochs and a resume to
3, and AdaCLIP 1 epoch and a resume to 2, on a tiny synthetic MVTec tree with tiny random
backbones.  Compares every ``epoch_N.safetensors`` (tensors, and metadata but its creation time)
and ``epoch_N.optim.pt`` and writes the largest differences to benchmarks/results/compare_training.json.

    python -m benchmarks.compare_training [--rev b2af659]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks.measure import write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compare_training.json"

# Runs inside one tree; only uses what both versions have (the CLI).
_RUNNER = r'''
import os, sys
from pathlib import Path
import torch
os.environ["HF_HUB_OFFLINE"] = "1"; os.environ["ADAPTCLIP_MED_PROGRESS"] = "0"
torch.set_num_threads(1)
out, inputs = Path(sys.argv[1]), Path(sys.argv[2])
from typer.testing import CliRunner
from adaptclip_med.cli.main import app
runner = CliRunner()
def run(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
tree = str(inputs / "aux")
a = ["--backbone", "adaptclip-tiny-vit", "--backbone-weights", str(inputs / "tiny.pt"), "--offline", "--device", "cpu",
     "--batch-size", "4", "--image-size", "56"]
b = ["--method", "adaclip", "--backbone", "adaclip-tiny-vit", "--backbone-weights", str(inputs / "ada.pt"), "--offline",
     "--device", "cpu", "--image-size", "56"]
run(["train", tree, "--out", str(out / "adaptclip"), "--epochs", "2", *a])
run(["train", tree, "--out", str(out / "adaptclip"), "--epochs", "3", "--resume", str(out / "adaptclip" / "epoch_2.safetensors"), *a])
run(["train", tree, "--out", str(out / "adaclip"), "--epochs", "1", *b])
run(["train", tree, "--out", str(out / "adaclip"), "--epochs", "2", "--resume", str(out / "adaclip" / "epoch_1.safetensors"), *b])
'''


def _prepare_inputs(folder: Path) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "training")]
    from clip_helpers import save_random_clip
    from tests.conftest import save_tiny_weights
    from training_trees import write_mvtec_tree

    write_mvtec_tree(folder / "aux", seed=3, classes=("tex", "cloth"), train_normals=3, test_normals=4, test_anomalies=4)
    save_tiny_weights(folder / "tiny.pt")
    save_random_clip("adaclip-tiny-vit", folder / "ada.pt")


def _extract(rev: str, target: Path) -> None:
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _flat(value, f"{prefix}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _flat(value, f"{prefix}/{i}")
    else:
        yield prefix, obj


def _compare(before: Path, after: Path) -> dict[str, float]:
    import torch
    from safetensors import safe_open

    diffs: dict[str, float] = {}
    for file in sorted(before.rglob("*.safetensors")):
        name = str(file.relative_to(before))
        with safe_open(str(file), "pt") as x, safe_open(str(after / name), "pt") as y:
            diffs[f"{name} weights"] = max(float((x.get_tensor(k) - y.get_tensor(k)).abs().max()) for k in x.keys())
            meta = [{k: v for k, v in json.loads(next(iter(h.metadata().values()))).items() if k != "created"} for h in (x, y)]
            diffs[f"{name} metadata differs"] = float(meta[0] != meta[1])
    for file in sorted(before.rglob("*.optim.pt")):
        name = str(file.relative_to(before))
        x = dict(_flat(torch.load(file, weights_only=False)))
        y = dict(_flat(torch.load(after / name, weights_only=False)))
        same = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k] for k in x)
        diffs[f"{name} optimizer state differs"] = float(not same)
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="b2af659", help="the revision to compare against")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adaptclip-compare-training-") as tmp:
        tmp = Path(tmp)
        _extract(args.rev, tmp / "base")
        (tmp / "inputs").mkdir()
        _prepare_inputs(tmp / "inputs")
        for tree, out in ((tmp / "base", tmp / "before"), (ROOT, tmp / "after")):
            subprocess.run([sys.executable, "-c", _RUNNER, str(out), str(tmp / "inputs")], cwd=tree, check=True,
                           env={**__import__("os").environ, "PYTHONPATH": str(tree)})
        diffs = _compare(tmp / "before", tmp / "after")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {"before": args.rev, "after": f"{head} (+ working tree)", "max_abs_difference": diffs,
              "all_identical": not any(diffs.values())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_results(RESULTS, record, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
