"""Every sub-command, given a missing path or a bad value, prints exactly one 'error:' line, no
traceback, and exits with the documented code (2 bad input, 3 missing weights)."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

from adaptclip_med.cli.main import app


TINY = ["--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0", "--adapters", "untrained",
        "--image-size", "56", "--offline", "--device", "cpu"]


def cases(tmp):
    missing = str(tmp / "missing")
    return {
        "predict": (["predict", f"{missing}.png", "--out", str(tmp / "r.npz"), *TINY], 2),
        "score": (["score", missing, "--out", str(tmp / "o"), "--zero-shot", *TINY], 2),
        "score bad value": (["score", str(tmp), "--out", str(tmp / "o"), "--aggregate", "bogus", "--zero-shot", *TINY], 2),
        "score bad study index": (["score", str(tmp), "--out", str(tmp / "o"), "--study", "-1", "--zero-shot", *TINY], 2),
        "references build": (["references", "build", "bank", missing, "--banks-root", str(tmp / "banks"), *TINY], 2),
        "references list": (["references", "list", "--banks-root", f"{missing}/banks", "--bogus"], 2),
        "batch": (["batch", missing, "--out", str(tmp / "b"), "--zero-shot", *TINY], 2),
        "train": (["train", missing, "--out", str(tmp / "t"), "--backbone", "adaptclip-tiny-vit", "--backbone-weights",
                   "random:0", "--image-size", "56", "--offline", "--device", "cpu"], 2),
        "evaluate": (["evaluate", missing, "--out", str(tmp / "e"), *TINY], 2),
        "weights import": (["weights", "import", f"{missing}/epoch_15.pth", "--offline"], 3),
        "weights missing backbone": (["score", str(tmp), "--out", str(tmp / "o"), "--backbone", "ViT-B-16",
                                      "--backbone-weights", "openai", "--adapters", "untrained", "--offline",
                                      "--cache-dir", str(tmp / "empty-cache"), "--zero-shot"], 3),
        "dashboard": (["dashboard", "--data-root", missing], 2),
        "demo bad value": (["demo", "--out", str(tmp / "d"), "--bogus"], 2),
    }


NAMES = list(cases(__import__("pathlib").Path("/x")))


@pytest.mark.parametrize("name", NAMES)
def test_one_error_line_no_traceback_and_the_documented_exit_code(tmp_path, name, monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args, code = cases(tmp_path)[name]
    result = CliRunner().invoke(app, args)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.lower().lstrip("│ ").startswith("error")]
    usage_error = "Usage:" in result.stderr  # click's own parse errors: one boxed 'Error' block
    assert len(errors) == 1 or usage_error, result.stderr
    assert result.exit_code == code, output
