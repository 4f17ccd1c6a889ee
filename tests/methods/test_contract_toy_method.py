"""The method contract is the only thing the product needs: a toy method defined in THIS file
(per-pixel intensity z-score against the matched normal slices, no CLIP at all) runs through
``references build``, ``score``, ``batch`` and the MONAI bundle's inference workflow with no
change anywhere in the package."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction
from adaptclip_med.methods.registry import register_method
from adaptclip_med.methods.registry import unregister_method

TOY = "toy-zscore"
SIZE = 32
runner = CliRunner()


class ZScoreMethod(AnomalyMethod):
    """|x - mean| / std per pixel against the reference slices, squashed to [0, 1]."""

    name = TOY
    summary = "toy: per-pixel z-score of intensity against the matched normal slices"
    references = "optional"
    trainable = False

    def __init__(self, size: int) -> None:
        self.image_size = size
        self.device = torch.device("cpu")

    @classmethod
    def load(cls, spec: MethodSpec) -> "ZScoreMethod":
        return cls(spec.image_size or SIZE)

    def identity(self) -> dict[str, Any]:
        return {"method": self.name, "backbone": None, "weights": None, "weights_sha256": None,
                "image_size": self.image_size, "preprocessing": "grey, bilinear resize", "class_name": None}

    def image_input(self, images: Sequence[Any]) -> torch.Tensor:
        arrays = [np.asarray(img.convert("L"), dtype=np.float32) / 255.0 for img in images]
        return self.slice_input(np.stack(arrays))

    def slice_input(self, slices01) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(slices01, dtype=np.float32)).unsqueeze(1)
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0]

    def global_embedding(self, encoded: torch.Tensor) -> torch.Tensor:
        return encoded.flatten(1)

    def memory_rows(self, encoded: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": encoded}

    def memory_from_rows(self, rows: Sequence[dict[str, torch.Tensor]]):
        stack = torch.cat([r["pixels"] for r in rows], dim=0)
        return stack.mean(dim=0), stack.std(dim=0, unbiased=False) + 0.05

    def predict_encoded(self, encoded: torch.Tensor, memory: Any = None) -> SlicePrediction:
        if memory is None:
            z = (encoded - encoded.mean(dim=(1, 2), keepdim=True)).abs() / 0.25
        else:
            memories = memory if isinstance(memory, list) else [memory] * encoded.shape[0]
            mean = torch.stack([m[0] for m in memories])
            std = torch.stack([m[1] for m in memories])
            z = (encoded - mean).abs() / std
        anomaly_map = 1.0 - torch.exp(-z / 4.0)
        return SlicePrediction(anomaly_map=anomaly_map, score=anomaly_map.flatten(1).amax(dim=1), extra_maps={"z": z})


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    register_method(ZScoreMethod)
    yield
    unregister_method(TOY)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from adaptclip_med.demo.phantom import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("toy-phantoms"), seed=0, n_references=3, shape=(6, 48, 48))


def _cli(args: list[str]):
    from adaptclip_med.cli.main import app

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def toy_bank(phantoms, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy-banks")
    _cli(["references", "build", "toy-head", *map(str, phantoms.reference_dirs[:2]), "--method", TOY, "--window", "brain",
          "--banks-root", str(root)])
    return root / "toy-head"


def test_bank_stores_the_toy_memory_and_is_keyed_by_it(toy_bank):
    meta = json.loads((toy_bank / "bank.json").read_text())
    assert meta["model"]["method"] == TOY and meta["calibration"]["method"] == "leave-one-scan-out"
    from safetensors import safe_open

    with safe_open(str(toy_bank / "scan_00.safetensors"), framework="pt") as handle:
        assert "pixels" in handle.keys() and handle.get_tensor("pixels").shape[1:] == (SIZE, SIZE)


def test_score_with_the_toy_method(phantoms, toy_bank, tmp_path):
    _cli(["score", str(phantoms.study_dir), "--method", TOY, "--references", str(toy_bank), "--out", str(tmp_path / "s")])
    report = json.loads((tmp_path / "s" / "study.json").read_text())
    assert report["scoring"]["method"] == TOY and report["scoring"]["shots"] == 2
    assert 0.0 <= report["score"] <= 1.0 and (tmp_path / "s" / "anomaly_seg.dcm").is_file()
    # the toy memory really is used: scoring zero-shot gives another study score
    _cli(["score", str(phantoms.study_dir), "--method", TOY, "--zero-shot", "--window", "brain", "--out", str(tmp_path / "z")])
    assert json.loads((tmp_path / "z" / "study.json").read_text())["score"] != pytest.approx(report["score"])


def test_bank_of_the_toy_method_is_refused_for_adaptclip(phantoms, toy_bank, tmp_path):
    from adaptclip_med.cli.main import app

    result = runner.invoke(app, ["score", str(phantoms.study_dir), "--references", str(toy_bank), "--out", str(tmp_path / "x"),
                                 "--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0", "--adapters", "untrained",
                                 "--image-size", "56", "--offline"])
    assert result.exit_code == 2 and f"method {TOY} (bank) vs adaptclip (now): pass --method {TOY}" in result.output


def test_batch_with_the_toy_method(phantoms, toy_bank, tmp_path):
    tree = tmp_path / "incoming"
    tree.mkdir()
    for i, folder in enumerate([phantoms.study_dir, phantoms.reference_dirs[2]]):
        shutil.copytree(folder, tree / f"s{i}")
    _cli(["batch", str(tree), "--method", TOY, "--references", str(toy_bank), "--out", str(tmp_path / "triage")])
    rows = list(csv.DictReader(open(tmp_path / "triage" / "worklist.csv")))
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows)


def test_bundle_inference_workflow_with_the_toy_method(phantoms, toy_bank, tmp_path):
    from monai.bundle import ConfigWorkflow

    bundle = Path(__file__).resolve().parents[2] / "bundles" / "adaptclip_med" / "configs" / "inference.json"
    studies = tmp_path / "studies"
    studies.mkdir()
    shutil.copytree(phantoms.study_dir, studies / "study")
    flow = ConfigWorkflow(config_file=str(bundle), workflow_type="infer", logging_file=False, method=TOY, adapters=None,
                          backbone=None, backbone_weights=None, image_size=SIZE, reference_bank=str(toy_bank),
                          dataset_dir=str(studies), output_dir=str(tmp_path / "out"))
    flow.initialize()
    flow.run()
    flow.finalize()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["studies"]
    assert [row["status"] for row in summary] == ["done"]
    folder = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert json.loads((folder / "study.json").read_text())["scoring"]["method"] == TOY


def test_dashboard_scores_with_the_toy_method(phantoms, tmp_path, monkeypatch):
    """The review dashboard's scoring (Streamlit AppTest, the real app script) with the toy method."""
    from streamlit.testing.v1 import AppTest

    from adaptclip_med.review.config import CONFIG_ENV, DashboardConfig
    from adaptclip_med.review.discovery import discover
    from adaptclip_med.review.paths import AllowedRoots
    from adaptclip_med.volume.options import ScoringOptions, SlicingOptions

    config = DashboardConfig(data_roots=(phantoms.study_dir.parent,), output=tmp_path / "out", banks_root=tmp_path / "banks",
                             scoring=ScoringOptions(model=MethodSpec(method=TOY, image_size=SIZE), slicing=SlicingOptions(window="brain")),
                             model_configured=True)
    monkeypatch.setenv(CONFIG_ENV, str(config.save(tmp_path / "dashboard.json")))
    study = next(c for c in discover(AllowedRoots([phantoms.study_dir.parent])).candidates if "LESIONS" in c.description)
    app = Path(__file__).resolve().parents[2] / "adaptclip_med" / "dashboard" / "entry.py"
    at = AppTest.from_file(str(app), default_timeout=180).run()
    at.button(key="scan_roots").click().run()
    at.selectbox(key="open_pick").set_value(study.key).run()
    at.button(key="open_candidate").click().run()
    at.button(key="score_now").click().run()
    assert not [e.value for e in at.exception], [e.value for e in at.exception]
    results = list((config.output / "studies").glob("*/study.json"))
    assert len(results) == 1
    assert json.loads(results[0].read_text())["scoring"]["method"] == TOY
