"""WinCLIP on the product's surfaces: ``predict`` (the acceptance path), a reference bank of a
toy volume holding WinCLIP's memory and class name, ``score`` against it, and several methods
scored side by side on one study."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from adaptclip_med.cli.main import app

ARCH = "winclip-tiny-vit"
SIZE = 84
runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tests.support.tiny_models import save_random_clip

    return save_random_clip(ARCH, tmp_path_factory.mktemp("winclip-cli") / "tiny.pt", seed=11)


def _model(weights) -> list[str]:
    return ["--method", "winclip", "--backbone", ARCH, "--backbone-weights", str(weights), "--offline", "--device", "cpu"]


def _invoke(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def _png(path, seed: int, shape=(90, 120)):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)).save(path)
    return path


def test_predict_cli_matches_the_method_for_k_0_1_2(weights, tmp_path):
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.preprocess import load_rgb_image

    query, refs = _png(tmp_path / "q.png", 1), [_png(tmp_path / f"r{i}.png", 2 + i) for i in range(2)]
    method = load_method(MethodSpec(method="winclip", backbone=BackboneSpec(ARCH, str(weights), offline=True),
                                    class_name="chest x-ray"))
    for k in (0, 1, 2):
        out = tmp_path / f"k{k}.npz"
        args = ["predict", str(query), *sum((["-r", str(r)] for r in refs[:k]), []), "--class-name", "chest x-ray",
                "--out", str(out), *_model(weights)]
        printed = _invoke(args).output
        assert (f"{k}-shot" if k else "zero-shot") in printed and "class 'chest x-ray'" in printed
        saved = np.load(out)
        with torch.no_grad():
            memory = method.encode_normals(method.image_input([load_rgb_image(r) for r in refs[:k]])) if k else None
            direct = method.predict(method.image_input([load_rgb_image(query)]), memory)
        assert saved["anomaly_map"].shape == (SIZE, SIZE)  # the backbone's native size
        np.testing.assert_allclose(saved["anomaly_map"], direct.anomaly_map[0].numpy(), atol=1e-6)
        assert abs(float(saved["score"]) - float(direct.score[0])) < 1e-6


def test_adapters_are_refused_for_winclip(weights, tmp_path):
    result = runner.invoke(app, ["predict", str(_png(tmp_path / "q.png", 1)), "--adapters", "x.safetensors",
                                 "--out", str(tmp_path / "r.npz"), *_model(weights)])
    assert result.exit_code == 2 and "training-free: --adapters does not apply" in result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from adaptclip_med.demo.phantom import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("winclip-phantoms"), seed=1, n_references=3, shape=(5, 64, 64))


@pytest.fixture(scope="module")
def bank(phantoms, weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("winclip-banks")
    _invoke(["references", "build", "head", *map(str, phantoms.reference_dirs[:2]), "--window", "brain",
             "--class-name", "brain", "--banks-root", str(root), *_model(weights)])
    return root / "head"


def test_bank_holds_winclip_memory_and_class_name(bank):
    from safetensors import safe_open

    meta = json.loads((bank / "bank.json").read_text())
    assert meta["model"]["method"] == "winclip" and meta["model"]["class_name"] == "brain"
    with safe_open(str(bank / "scan_00.safetensors"), framework="pt") as handle:
        assert {"patches", "windows2", "windows3", "global"} <= set(handle.keys())


def test_score_against_the_bank_uses_the_banks_class_name(phantoms, bank, weights, tmp_path):
    _invoke(["score", str(phantoms.study_dir), "--references", str(bank), "--out", str(tmp_path / "s"), *_model(weights)])
    report = json.loads((tmp_path / "s" / "study.json").read_text())
    assert report["scoring"]["method"] == "winclip" and report["scoring"]["shots"] == 2
    assert report["scoring"]["model"]["class_name"] == "brain"  # taken from the bank, none given
    assert 0.0 <= report["score"] <= 1.0
    other = runner.invoke(app, ["score", str(phantoms.study_dir), "--references", str(bank), "--class-name", "liver",
                                "--out", str(tmp_path / "x"), *_model(weights)])
    assert other.exit_code == 2 and "class_name brain (bank) vs liver (now): pass --class-name brain" in other.output


def test_score_several_methods_writes_one_folder_each_and_a_comparison(phantoms, weights, tmp_path):
    out = tmp_path / "both"
    result = _invoke(["score", str(phantoms.study_dir), "--zero-shot", "--window", "brain", "--out", str(out),
                      "--method", "winclip,adaptclip", "--adapters", "adaptclip=untrained", "--backbone", ARCH,
                      "--backbone-weights", str(weights), "--image-size", str(SIZE), "--offline", "--device", "cpu"])
    assert "comparison of 2 methods" in result.output
    summary = json.loads((out / "methods.json").read_text())
    assert [m["method"] for m in summary["methods"]] == ["winclip", "adaptclip"]
    assert sorted(summary["ranking"]) == ["adaptclip", "winclip"]
    for name in ("winclip", "adaptclip"):
        assert json.loads((out / name / "study.json").read_text())["scoring"]["method"] == name
    assert (out / "methods_score_plot.png").stat().st_size > 1000
