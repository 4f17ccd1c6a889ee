"""`adaptclip-med predict` and `weights` end to end, including every user-error path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from adaptclip_med.cli.main import app
from adaptclip_med.methods.adaptclip.checkpoints import save_adapters

runner = CliRunner()


def _png(path: Path, size=(56, 56), seed=0, mode="L") -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path)
    return path


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory) -> Path:
    return save_adapters(tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _args(tiny_weights, adapters, *extra):
    return ["predict", *extra, "--backbone", "adaptclip-tiny-vit", "--backbone-weights", str(tiny_weights),
            "--adapters", str(adapters), "--offline"]


def _one_line_error(result) -> str:
    text = result.output.strip()
    assert result.exit_code != 0
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


@pytest.mark.parametrize("shots", [0, 1, 2])
def test_predict_writes_map_score_and_overlay(tmp_path, tiny_weights, adapters, shots):
    query = _png(tmp_path / "q.png", seed=1)
    refs = [str(_png(tmp_path / f"r{i}.png", seed=10 + i)) for i in range(shots)]
    ref_args = [a for r in refs for a in ("--reference", r)]
    out, overlay = tmp_path / "result.npz", tmp_path / "overlay.png"
    result = runner.invoke(app, _args(tiny_weights, adapters, str(query), *ref_args, "--out", str(out), "--overlay", str(overlay)))
    assert result.exit_code == 0, result.output
    data = np.load(out)
    assert data["anomaly_map"].shape == (56, 56) and data["anomaly_map"].dtype == np.float32
    assert data["score"].dtype == np.float32 and data["score"].shape == () and 0 <= float(data["score"]) <= 1
    assert Image.open(overlay).size == (56, 56) and Image.open(overlay).mode == "RGB"
    assert f"{shots}-shot" in result.output or (shots == 0 and "zero-shot" in result.output)


def test_predict_resizes_to_the_requested_image_size(tmp_path, tiny_weights, adapters):
    query = _png(tmp_path / "q.png", size=(100, 80), mode="RGB")
    out = tmp_path / "r.npz"
    result = runner.invoke(app, _args(tiny_weights, adapters, str(query), "--out", str(out), "--image-size", "84"))
    assert result.exit_code == 0, result.output
    assert np.load(out)["anomaly_map"].shape == (84, 84)


def test_missing_backbone_weights_offline(tmp_path, adapters):
    query = _png(tmp_path / "q.png")
    result = runner.invoke(app, ["predict", str(query), "--backbone", "ViT-B-16-plus-240", "--backbone-weights", "laion400m_e31",
                                 "--adapters", str(adapters), "--out", str(tmp_path / "r.npz"), "--offline"])
    text = _one_line_error(result)
    assert result.exit_code == 3 and "not in the local cache" in text and "weights fetch" in text


def test_missing_adapter_file(tmp_path, tiny_weights):
    query = _png(tmp_path / "q.png")
    result = runner.invoke(app, _args(tiny_weights, tmp_path / "nope.safetensors", str(query), "--out", str(tmp_path / "r.npz")))
    assert "does not exist" in _one_line_error(result)


def test_checkpoint_for_another_backbone(tmp_path, tiny_model, adapters):
    import json

    config = json.loads((Path(__file__).parents[2] / "adaptclip_med/model/configs/adaptclip-tiny-vit.json").read_text())
    config["embed_dim"] = 32
    other = tmp_path / "tiny32.json"
    other.write_text(json.dumps(config))
    query = _png(tmp_path / "q.png")
    result = runner.invoke(app, ["predict", str(query), "--backbone", str(other), "--backbone-weights", "random:1",
                                 "--adapters", str(adapters), "--out", str(tmp_path / "r.npz")])
    assert "embedding dim 64" in _one_line_error(result)


def test_unreadable_image(tmp_path, tiny_weights, adapters):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = runner.invoke(app, _args(tiny_weights, adapters, str(bad), "--out", str(tmp_path / "r.npz")))
    assert "broken.png" in _one_line_error(result)


def test_reference_of_a_different_size_or_kind(tmp_path, tiny_weights, adapters):
    query = _png(tmp_path / "q.png")
    big = _png(tmp_path / "big.png", size=(64, 64))
    colour = _png(tmp_path / "colour.png", mode="RGB")
    for ref, word in ((big, "64x64"), (colour, "colour")):
        result = runner.invoke(app, _args(tiny_weights, adapters, str(query), "--reference", str(ref), "--out", str(tmp_path / "r.npz")))
        assert word in _one_line_error(result)
    assert not (tmp_path / "r.npz").exists()


def test_unknown_backbone_name(tmp_path, adapters):
    result = runner.invoke(app, ["predict", str(_png(tmp_path / "q.png")), "--backbone", "ViT-Z-99", "--adapters", str(adapters),
                                 "--out", str(tmp_path / "r.npz")])
    assert "unknown backbone" in _one_line_error(result)


def test_console_script_reports_errors_without_traceback(tmp_path):
    """The installed entry point (not only the Typer runner) prints one line and exits non-zero."""
    proc = subprocess.run([sys.executable, "-m", "adaptclip_med.cli.main", "predict", str(tmp_path / "missing.png"),
                           "--adapters", str(tmp_path / "a.safetensors"), "--out", str(tmp_path / "r.npz"), "--offline"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_weights_status_lists_missing(tmp_path):
    result = runner.invoke(app, ["weights", "status", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ViT-L-14-336 / openai" in result.output and "MISSING" in result.output


def test_weights_import_converts_a_release_layout_file(tmp_path, tiny_model, tiny_weights):
    import torch

    from adaptclip_med.methods.adaptclip import release_import
    from adaptclip_med.methods.adaptclip.checkpoints import read_metadata

    src = tmp_path / "epoch_15.pth"
    torch.save(release_import.export_release_state(tiny_model.adapter_state_dict()), src)
    dst = tmp_path / "converted.safetensors"
    result = runner.invoke(app, ["weights", "import", str(src), "--out", str(dst), "--backbone", "adaptclip-tiny-vit",
                                 "--backbone-weights", str(tiny_weights), "--offline"])
    assert result.exit_code == 0, result.output
    meta = read_metadata(dst)
    assert meta.provenance["source"] == "release-layout file" and len(meta.provenance["sha256"]) == 64


def test_precision_option_logs_its_choice_and_stays_close_to_fp32(tmp_path, tiny_weights, adapters, caplog):
    """``--precision bf16`` converts the vision tower and says so; maps stay near the fp32 ones
    (the tiny model's documented bf16 tolerance, tests/perf/test_precision.py)."""
    query = _png(tmp_path / "q.png", seed=1)
    ref = _png(tmp_path / "r.png", seed=2)
    maps = {}
    for mode in ("fp32", "bf16"):
        out = tmp_path / f"{mode}.npz"
        with caplog.at_level("INFO", logger="adaptclip_med.model.precision"):
            result = runner.invoke(app, _args(tiny_weights, adapters, str(query), "-r", str(ref), "--out", str(out),
                                              "--precision", mode))
        assert result.exit_code == 0, result.output
        assert f"inference precision {mode}" in caplog.text
        maps[mode] = np.load(out)["anomaly_map"]
    assert np.abs(maps["fp32"] - maps["bf16"]).max() < 2e-2
    bad = runner.invoke(app, _args(tiny_weights, adapters, str(query), "--out", str(tmp_path / "x.npz"), "--precision", "fp8"))
    assert "precision 'fp8' is not one of" in _one_line_error(bad)
