"""`adaptclip-med train` and `evaluate` end to end on tiny synthetic trees."""

from __future__ import annotations

import csv

import pytest
import typer
from PIL import Image
from training_trees import write_mvtec_tree
from typer.testing import CliRunner

from adaptclip_med.cli import evaluate, train
from adaptclip_med.evaluation.metrics import METRIC_NAMES

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    train.register(app)
    evaluate.register(app)
    return app


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_trees")
    return (write_mvtec_tree(base / "aux", seed=3, classes=("tex", "cloth"), train_normals=3, test_normals=4, test_anomalies=4),
            write_mvtec_tree(base / "target", seed=4, classes=("tex", "cloth"), train_normals=3, test_normals=3, test_anomalies=3))


def _backbone(tiny_weights):
    return ["--backbone", "adaptclip-tiny-vit", "--backbone-weights", str(tiny_weights), "--offline", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(app, trees, tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    result = runner.invoke(app, ["train", str(trees[0]), "--out", str(out), "--epochs", "1", "--batch-size", "4",
                                 "--image-size", "56", *_backbone(tiny_weights)])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output
    assert (out / "epoch_1.optim.pt").is_file()
    return out / "epoch_1.safetensors"


def _one_line_error(result) -> str:
    text = result.output.strip()
    assert result.exit_code != 0 and "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def test_evaluate_writes_the_report(app, trees, tiny_weights, checkpoint, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["evaluate", str(trees[1]), "--adapters", str(checkpoint), "--shots", "0,1",
                                 "--shots", "2", "--seeds", "10", "--seeds", "20", "--out", str(out), *_backbone(tiny_weights)])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "results.csv", "summary.csv", "references.json"):
        assert (out / name).is_file(), name
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["shots"], r["seed"]) for r in rows} == {("0", "10"), ("1", "10"), ("1", "20"), ("2", "10"), ("2", "20")}
    assert {r["class"] for r in rows} == {"tex", "cloth"}
    values = [float(r[m]) for r in rows for m in METRIC_NAMES if r.get(m)]
    assert len(values) == len(rows) * len(METRIC_NAMES) and all(0.0 <= v <= 100.0 for v in values)
    report = (out / "report.md").read_text()
    assert "aux (mvtec layout), test split, epoch 1" in report and "56x56" in report
    examples = sorted((out / "examples").iterdir())
    assert [p.name for p in examples] == ["cloth_2shot_seed10_1.png", "cloth_2shot_seed10_2.png",
                                          "tex_2shot_seed10_1.png", "tex_2shot_seed10_2.png"]
    assert Image.open(examples[0]).size == (2 * 56 + 4, 56)
    assert any(p.suffix == ".png" for p in (out / "plots").iterdir())


def test_bmad_preset_compares_at_256(app, trees, tiny_weights, checkpoint, tmp_path):
    out = tmp_path / "bmad"
    result = runner.invoke(app, ["evaluate", str(trees[1]), "--adapters", str(checkpoint), "--shots", "1", "--seeds", "10",
                                 "--preset", "bmad", "--class", "tex", "--examples", "1", "--out", str(out), *_backbone(tiny_weights)])
    assert result.exit_code == 0, result.output
    assert "256x256" in (out / "report.md").read_text()
    assert Image.open(out / "examples" / "tex_1shot_seed10_1.png").size == (2 * 256 + 4, 256)


@pytest.mark.parametrize("extra, needle", [(["--shots", "one"], "not an integer"), (["--preset", "isic"], "unknown preset"),
                                           (["--shots", "-1"], "shot counts"), (["--class", "wood"], "wood")])
def test_evaluate_user_errors(app, trees, tiny_weights, checkpoint, tmp_path, extra, needle):
    result = runner.invoke(app, ["evaluate", str(trees[1]), "--adapters", str(checkpoint), "--out", str(tmp_path), *extra,
                                 *_backbone(tiny_weights)])
    assert needle in _one_line_error(result)


def test_train_user_errors(app, trees, tiny_weights, tmp_path):
    result = runner.invoke(app, ["train", str(trees[0]), "--out", str(tmp_path), "--batch-size", "1", *_backbone(tiny_weights)])
    assert "at least 2" in _one_line_error(result)
    result = runner.invoke(app, ["train", str(tmp_path / "missing"), "--out", str(tmp_path), *_backbone(tiny_weights)])
    assert "not a folder" in _one_line_error(result)


def test_train_and_evaluate_on_volumes_with_label_maps(app, tiny_weights, tmp_path, monkeypatch):
    """Medical auxiliary data as volumes + label maps: no conversion step before train/evaluate."""
    from tests.data.volume_trees import write_volume_dataset

    monkeypatch.setenv("ADAPTCLIP_MED_HOME", str(tmp_path / "home"))  # slice cache
    root = write_volume_dataset(tmp_path / "ct_head")
    out = tmp_path / "trained"
    result = runner.invoke(app, ["train", str(root), "--out", str(out), "--epochs", "1", "--batch-size", "4",
                                 "--image-size", "56", "--window", "brain", *_backbone(tiny_weights)])
    assert result.exit_code == 0, result.output
    assert (out / "epoch_1.safetensors").is_file()
    report = tmp_path / "report"
    result = runner.invoke(app, ["evaluate", str(root), "--layout", "volumes", "--adapters", str(out / "epoch_1.safetensors"),
                                 "--shots", "0,1", "--seeds", "10", "--window", "brain", "--out", str(report),
                                 *_backbone(tiny_weights)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((report / "summary.csv").open()))
    assert {row.get("shots") or row.get("k") for row in rows} >= {"0", "1"}, rows[:1]
    assert "volumes sliced along the axial axis" in (report / "report.md").read_text()


@pytest.fixture(scope="module")
def shared_backbone(tmp_path_factory) -> list[str]:
    """A tiny backbone both methods run on (AdaCLIP prompts 4 text blocks: the 5-block tiny config)."""
    from tests.support.tiny_models import save_random_clip

    path = save_random_clip("adaclip-tiny-vit", tmp_path_factory.mktemp("shared-backbone") / "tiny.pt")
    return ["--backbone", "adaclip-tiny-vit", "--backbone-weights", str(path), "--offline", "--device", "cpu"]


@pytest.fixture(scope="module")
def adaclip_run(app, trees, shared_backbone, tmp_path_factory):
    """``train --method adaclip``: the authors' recipe through the method contract (1 epoch, tiny model)."""
    out = tmp_path_factory.mktemp("adaclip-trained")
    result = runner.invoke(app, ["train", str(trees[0]), "--method", "adaclip", "--out", str(out), "--epochs", "1",
                                 "--image-size", "56", *shared_backbone])
    assert result.exit_code == 0, result.output
    assert "epoch 1: loss" in result.output and (out / "epoch_1.optim.pt").is_file()
    return out / "epoch_1.safetensors"


def test_adaclip_training_writes_a_checkpoint_that_loads(adaclip_run):
    import torch

    from adaptclip_med.methods.adaclip.weights import read_project_metadata

    meta = read_project_metadata(adaclip_run)
    assert meta["provenance"]["method"] == "adaclip" and meta["provenance"]["training"]["optimizer"] == "adamw"
    assert meta["provenance"]["training"]["lr"] == 0.01 and meta["provenance"]["training"]["batch_size"] == 1
    assert torch.isfinite(torch.tensor(meta["provenance"]["losses"]["total"]))


def test_evaluate_compares_methods_side_by_side(app, trees, shared_backbone, adaclip_run, tmp_path):
    """``evaluate --method adaptclip,adaclip``: one sub-report per method plus one comparison table and plot."""
    trained = runner.invoke(app, ["train", str(trees[0]), "--out", str(tmp_path / "adaptclip"), "--epochs", "1",
                                  "--batch-size", "4", "--image-size", "56", *shared_backbone])
    assert trained.exit_code == 0, trained.output
    checkpoint = tmp_path / "adaptclip" / "epoch_1.safetensors"
    out = tmp_path / "compare"
    result = runner.invoke(app, ["evaluate", str(trees[1]), "--method", "adaptclip,adaclip",
                                 "--adapters", f"adaptclip={checkpoint},adaclip={adaclip_run}", "--shots", "0,1",
                                 "--seeds", "10", "--image-size", "56", "--examples", "1", "--out", str(out),
                                 *shared_backbone])
    assert result.exit_code == 0, result.output
    for method in ("adaptclip", "adaclip"):
        assert (out / method / "report.md").is_file() and (out / method / "results.csv").is_file()
    rows = list(csv.DictReader(open(out / "comparison.csv")))
    shots = {(r["method"], r["shots"]) for r in rows}
    # AdaCLIP has no reference branch: only zero-shot rows; AdaptCLIP has both
    assert shots == {("adaptclip", "0"), ("adaptclip", "1"), ("adaclip", "0")}
    assert all(r["I-AUROC"] for r in rows)
    table = (out / "comparison.md").read_text()
    assert "| adaptclip | 1 |" in table and "| adaclip | 0 |" in table and (out / "comparison.png").stat().st_size > 1000
