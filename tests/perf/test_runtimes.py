"""Vision-tower runtimes (adaptclip_med/runtime/): the tiny backbone exported and run through each
runtime, compared with the torch forward; the graph cache; the choice rules and refusals."""

from __future__ import annotations

import logging

import pytest
import torch

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.runtime import measured
from adaptclip_med.runtime.base import MissingRuntimeError
from adaptclip_med.runtime.choice import configure_vision, load_backends, require_torch_runtime, resolve_runtime
from adaptclip_med.runtime.registry import get_runtime

from tests.support.tiny_models import TINY, TINY_SIZE

CPU = torch.device("cpu")
AVX2 = frozenset({"avx", "avx2", "fma"})
#: fp32 runtimes reproduce torch to fp32 rounding (measured ~3e-7 on the tiny model, ~1e-6 on ViT-L).
FP32_TOLERANCE = 1e-5
#: int8 (onnxruntime) vs torch fp32 on the tiny model: measured 3.5e-3 map / 1.7e-3 score; the
#: tiny model's deliberately large random adapter weights amplify the rounding, so allow 10x.
INT8_MAP_TOLERANCE = 3e-2
INT8_SCORE_TOLERANCE = 2e-2


@pytest.fixture()
def model(tiny_spec):
    """A model of its own (the session's tiny_model must not get a runtime attached)."""
    from adaptclip_med.methods.adaptclip.checkpoints import build_model

    loaded = build_model(tiny_spec, None, TINY_SIZE)
    return loaded.model.eval()


def _predict(model, images, references):
    with torch.no_grad():
        memory = model.encode_references(references)
        return model.predict(images, memory)


@pytest.mark.parametrize("runtime, precision, map_tol, score_tol", [
    ("onnxruntime", "fp32", FP32_TOLERANCE, FP32_TOLERANCE),
    ("openvino", "fp32", FP32_TOLERANCE, FP32_TOLERANCE),
    ("onnxruntime", "int8", INT8_MAP_TOLERANCE, INT8_SCORE_TOLERANCE),
])
def test_runtime_matches_torch(model, images, tmp_path, runtime, precision, map_tol, score_tol):
    pytest.importorskip(runtime)
    references = images[3:]
    exact = _predict(model, images[:3], references)
    exact_features = model.backbone.encode_image(images[:3])
    choice = configure_vision(model, runtime, precision, cache_dir=tmp_path)
    assert (choice.runtime, choice.precision) == (runtime, precision)
    fast = _predict(model, images[:3], references)
    assert (fast.anomaly_map - exact.anomaly_map).abs().max() <= map_tol
    assert (fast.score - exact.score).abs().max() <= score_tol
    features = model.backbone.encode_image(images[:3])
    assert features.grid == exact_features.grid and len(features.taps) == len(exact_features.taps)
    if precision == "fp32":
        for ours, theirs in zip(features.taps, exact_features.taps):
            assert (ours - theirs).abs().max() <= FP32_TOLERANCE
    # another batch size runs through the same graph (dynamic batch axis)
    single = model.backbone.encode_image(images[:1])
    assert single.taps[0].shape[0] == 1


def test_other_image_size_falls_back_to_the_exact_torch_forward(model, images, tmp_path):
    pytest.importorskip("onnxruntime")
    configure_vision(model, "onnxruntime", "int8", cache_dir=tmp_path)
    other = torch.nn.functional.interpolate(images[:1], size=(28, 28))
    assert not model.backbone.vision_runtime.accepts(other)
    model.backbone.encode_image(other)  # no error: torch runs it


def test_graphs_are_cached_by_size_and_precision(model, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    with caplog.at_level(logging.INFO, logger="adaptclip_med.runtime"):
        configure_vision(model, "onnxruntime", "fp32", cache_dir=tmp_path)
        assert "exported the vision tower" in caplog.text
        caplog.clear()
        configure_vision(model, "onnxruntime", "fp32", cache_dir=tmp_path)
        assert "exported" not in caplog.text  # reused
        assert "NOT exact" not in caplog.text  # fp32 runtimes carry no warning
        configure_vision(model, "onnxruntime", "int8", cache_dir=tmp_path)
        assert "converted the vision tower to int8" in caplog.text and "exported" not in caplog.text
        assert "int8 fast mode is NOT exact" in caplog.text  # said every time int8 is chosen
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0].endswith("-fp32.onnx") and names[1].endswith("-int8-onnxruntime.onnx")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_cache_key_follows_the_backbone_and_size(model):
    from adaptclip_med.runtime.cache import graph_key

    key = graph_key(model.backbone, 56)
    assert graph_key(model.backbone, 56) == key
    assert graph_key(model.backbone, 84) != key
    with torch.no_grad():
        model.backbone.clip.visual.proj.add_(1.0)  # other weights, same identity label
    assert graph_key(model.backbone, 56) != key


def test_interrupted_export_leaves_nothing_behind(model, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import adaptclip_med.runtime.export as export

    def broken(backbone, image_size, path):
        path.write_bytes(b"half a graph")
        raise RuntimeError("killed")

    monkeypatch.setattr(export, "export_tower", broken)
    with pytest.raises(RuntimeError):
        configure_vision(model, "onnxruntime", "fp32", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_back_to_torch_detaches_the_runtime(model, tmp_path):
    pytest.importorskip("onnxruntime")
    configure_vision(model, "onnxruntime", "fp32", cache_dir=tmp_path)
    assert model.backbone.vision_runtime is not None
    assert configure_vision(model, "torch", "fp32").runtime == "torch"
    assert model.backbone.vision_runtime is None


# ---------------------------------------------------------------------------- choice and refusals
def test_refusals_are_one_line():
    with pytest.raises(AdaptClipError, match="precision int8 runs in an inference runtime, not torch: add --runtime onnxruntime"):
        resolve_runtime("torch", "int8", CPU)
    with pytest.raises(AdaptClipError, match="runtime 'openvino' runs in fp32 only"):
        resolve_runtime("openvino", "int8", CPU)
    with pytest.raises(AdaptClipError, match="runtime 'onnxruntime' runs in fp32, int8 only"):
        resolve_runtime("onnxruntime", "bf16", CPU)
    with pytest.raises(AdaptClipError, match="runs on the CPU only: use --runtime torch with --device cuda"):
        resolve_runtime("onnxruntime", "fp32", torch.device("cuda"))
    with pytest.raises(AdaptClipError, match="runtime 'tensorrt' is not one of torch, onnxruntime, openvino, auto"):
        resolve_runtime("tensorrt", "fp32", CPU)
    with pytest.raises(AdaptClipError, match="does not apply"):
        require_torch_runtime("winclip", "onnxruntime")
    require_torch_runtime("winclip", "auto")


def test_missing_package_names_the_pip_extra(model, monkeypatch):
    load_backends()
    cls = get_runtime("openvino")
    monkeypatch.setattr(type(cls), "installed", classmethod(lambda c: False), raising=False)
    monkeypatch.setattr(cls, "installed", classmethod(lambda c: False))
    with pytest.raises(MissingRuntimeError, match=r"^runtime 'openvino' needs the Python package 'openvino': "
                                                  r"pip install 'adaptclip-med\[openvino\]'$"):
        configure_vision(model, "openvino", "fp32")


def test_auto_keeps_torch_unless_a_runtime_was_measured_faster(monkeypatch):
    assert resolve_runtime("auto", "auto", CPU, frozenset({"avx512f", "avx512_bf16"})).runtime == "torch"
    monkeypatch.setattr(measured, "FP32_WINNERS", {})
    choice = resolve_runtime("auto", "fp32", CPU, AVX2)
    assert (choice.runtime, choice.precision) == ("torch", "fp32") and "no runtime measured" in choice.reason
    monkeypatch.setattr(measured, "FP32_WINNERS", {"avx2": "onnxruntime"})
    assert resolve_runtime("auto", "auto", CPU, AVX2).runtime == "onnxruntime"
    assert resolve_runtime("auto", "fp32", CPU, frozenset({"avx512f"})).runtime == "torch"  # never measured there
    assert resolve_runtime("auto", "fp32", torch.device("cuda"), AVX2).runtime == "torch"
    for half in ("bf16", "fp16"):  # half precisions are torch's, never swapped for an fp32 runtime
        assert (resolve_runtime("auto", half, CPU, AVX2).runtime, resolve_runtime("auto", half, CPU, AVX2).precision) == ("torch", half)
    with pytest.raises(AdaptClipError, match="runs in fp32, int8 only|runs in fp32 only"):
        resolve_runtime("onnxruntime", "fp16", CPU)
    cls = get_runtime("onnxruntime")
    monkeypatch.setattr(cls, "installed", classmethod(lambda c: False))
    choice = resolve_runtime("auto", "fp32", CPU, AVX2)
    assert choice.runtime == "torch" and "pip install 'adaptclip-med[onnxruntime]'" in choice.reason


def test_auto_or_no_runtime_with_int8_uses_the_int8_runtime():
    for runtime in ("auto", None):
        choice = resolve_runtime(runtime, "int8", CPU, AVX2)
        assert (choice.runtime, choice.precision) == (measured.INT8_RUNTIME, "int8")
    assert resolve_runtime(None, "auto", CPU, AVX2).runtime == "torch"
    assert resolve_runtime(None, "fp32", CPU, AVX2).runtime == "torch"


def test_method_contract_carries_the_runtime(tiny_weights, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("ADAPTCLIP_MED_HOME", str(tmp_path))
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import get_method
    from adaptclip_med.model.backbone_source import BackboneSpec

    spec = MethodSpec(backbone=BackboneSpec(TINY, str(tiny_weights), offline=True), image_size=TINY_SIZE,
                      precision="int8")  # no --runtime: int8 alone selects onnxruntime
    method = get_method("adaptclip").load(spec)
    assert (method.runtime, method.precision) == ("onnxruntime", "int8")
    assert list((tmp_path / "runtime-graphs").glob("*-int8-onnxruntime.onnx"))


@pytest.mark.parametrize("extra, message", [
    (["--runtime", "torch", "--precision", "int8"], "precision int8 runs in an inference runtime, not torch"),
    (["--runtime", "openvino", "--precision", "int8"], "runtime 'openvino' runs in fp32 only"),
    (["--runtime", "bogus"], "runtime 'bogus' is not one of torch, onnxruntime, openvino, auto"),
])
def test_cli_refusals_are_one_error_line(tmp_path, monkeypatch, extra, message):
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from adaptclip_med.cli.main import app

    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    monkeypatch.setenv("ADAPTCLIP_MED_HOME", str(tmp_path / "home"))
    image = tmp_path / "slice.png"
    Image.fromarray(np.full((56, 56), 90, dtype=np.uint8)).save(image)
    args = ["predict", str(image), "--out", str(tmp_path / "r.npz"), "--backbone", TINY, "--backbone-weights", "random:0",
            "--adapters", "untrained", "--image-size", str(TINY_SIZE), "--offline", "--device", "cpu", *extra]
    result = CliRunner().invoke(app, args)
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error")]
    assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_int8_is_part_of_the_identity_so_banks_do_not_mix_it_with_fp32(tiny_spec):
    """An fp32 bank scored with int8 features (or the reverse) is refused naming the flag; fp32 and
    bf16 identities are unchanged, so banks built before still open."""
    from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod
    from adaptclip_med.methods.adaptclip.checkpoints import build_model
    from adaptclip_med.methods.identity import identity_differences

    loaded = build_model(tiny_spec, None, TINY_SIZE)
    exact, bf16, fast = (AdaptCLIPMethod(loaded, "cpu", p).identity() for p in ("fp32", "bf16", "int8"))
    assert "precision" not in exact and exact == bf16 and fast["precision"] == "int8"
    assert identity_differences(exact, fast) == ["precision None (bank) vs int8 (now): drop --precision or build the bank with it"]
    assert identity_differences(fast, exact) == ["precision int8 (bank) vs None (now): pass --precision int8"]
