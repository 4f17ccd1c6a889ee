"""The model flags become the method spec directly (``common.model_options``), validated by the
method: what the method cannot do is refused in one line naming the flag."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from adaptclip_med.cli import common
from adaptclip_med.methods.base import MethodSpec
from adaptclip_med.model.backbone_source import BackboneSpec

SEEN: dict[str, object] = {}
app = typer.Typer()


@app.command("one")
@common.user_errors
@common.model_options()
def one(model: MethodSpec = None) -> None:
    SEEN["one"] = model


@app.command("many")
@common.user_errors
@common.model_options(multi=True)
def many(models: tuple = None) -> None:
    SEEN["many"] = models


@app.command("review")
@common.user_errors
@common.model_options(require_weights=False)
def review(model: MethodSpec = None, adapters_given: bool = False) -> None:
    SEEN["review"] = (model, adapters_given)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    SEEN.clear()


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_flags_become_the_method_spec():
    result = invoke("one", "--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0", "--adapters",
                    "a.safetensors", "--image-size", "56", "--offline", "--device", "auto", "--class-name", "head",
                    "--backbone-activation", "gelu", "--cache-dir", "/hub")
    assert result.exit_code == 0, result.output
    assert SEEN["one"] == MethodSpec(method="adaptclip", backbone=BackboneSpec("adaptclip-tiny-vit", "random:0", "gelu", "/hub", True),
                                     weights="a.safetensors", image_size=56, device="cpu", class_name="head")


def test_untrained_means_fresh_weights_and_the_backbone_defaults_to_the_method():
    assert invoke("one", "--adapters", "untrained", "--device", "cpu").exit_code == 0
    assert SEEN["one"] == MethodSpec(backbone=BackboneSpec("", None), weights=None, device="cpu")


def test_several_methods_each_get_their_spec_and_their_adapters():
    result = invoke("many", "--method", "adaptclip,winclip", "--adapters", "adaptclip=a.safetensors", "--device", "cpu")
    assert result.exit_code == 0, result.output
    adaptclip, winclip = SEEN["many"]
    assert (adaptclip.method, adaptclip.weights) == ("adaptclip", "a.safetensors")
    assert (winclip.method, winclip.weights) == ("winclip", None)


@pytest.mark.parametrize("args, message", [
    (("one",), "error: method 'adaptclip' needs trained weights: pass --adapters FILE"),
    (("one", "--method", "winclip", "--adapters", "w.pt"), "error: method 'winclip' is training-free: --adapters does not apply (drop it)"),
    (("one", "--method", "winclip", "--adapters", "untrained"), "error: method 'winclip' is training-free: --adapters does not apply"),
    (("one", "--method", "winclip", "--precision", "int8"), "error: precision 'int8' is not one of fp32 (the precisions method 'winclip' supports)"),
    (("one", "--method", "adaptclip,winclip", "--adapters", "untrained"), "error: this command takes one --method, got adaptclip, winclip"),
    (("many", "--method", "adaptclip,winclip", "--adapters", "adaclip=x.pth"), "error: --adapters names adaclip, which --method does not list (adaptclip, winclip)"),
    (("one", "--method", "bogus"), "error: unknown method 'bogus': choose one of adaptclip"),
])
def test_what_a_method_cannot_do_is_one_line_naming_the_flag(args, message):
    result = invoke(*args)
    assert result.exit_code != 0 and one_error(result).startswith(message)
    assert not SEEN


def test_a_command_that_reviews_only_accepts_a_trainable_method_without_weights():
    assert invoke("review", "--device", "cpu").exit_code == 0
    assert SEEN["review"] == (MethodSpec(backbone=BackboneSpec("", None), device="cpu"), False)
    assert invoke("review", "--adapters", "untrained", "--device", "cpu").exit_code == 0
    assert SEEN["review"][1] is True and SEEN["review"][0].weights is None


def test_the_method_and_the_registry_validate_a_spec():
    from adaptclip_med.errors import AdaptClipError
    from adaptclip_med.methods.registry import get_method, validate_spec

    spec = MethodSpec(method="winclip", weights="w.pt")
    with pytest.raises(AdaptClipError, match="training-free"):
        get_method("winclip").validate(spec)
    with pytest.raises(AdaptClipError, match="training-free"):
        validate_spec(spec)
    assert validate_spec(MethodSpec(method="adaptclip"), weights_required=False) == MethodSpec(method="adaptclip")
