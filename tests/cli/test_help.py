"""Help output: flags read as flags, usage lines name arguments plainly, long texts are not cut."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

from adaptclip_med.cli.main import app


@pytest.mark.parametrize("command", [[], ["score"], ["batch"], ["predict"], ["references", "build"], ["weights", "status"]])
def test_help_has_no_bool_values_no_braces_and_no_ellipsis(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text and "{" not in text.split("\n\n")[0] + "".join(l for l in text.splitlines() if "Usage:" in l)
    assert "…" not in text


def test_usage_names_arguments_in_capitals():
    usage = next(l for l in CliRunner().invoke(app, ["predict", "--help"]).output.splitlines() if "Usage:" in l)
    assert "QUERY" in usage and "{" not in usage
    assert "--debug" in CliRunner().invoke(app, ["--help"]).output


def test_batch_help_documents_the_exit_codes():
    text = " ".join(CliRunner().invoke(app, ["batch", "--help"]).output.split())
    assert "0 every study scored" in text and "4 some studies failed" in text and "2 nothing scored" in text


def test_weights_status_hint_is_complete(tmp_path):
    result = CliRunner().invoke(app, ["weights", "status", "--cache-dir", str(tmp_path)])
    assert "weights import PATH/epoch_15.pth" in result.output
