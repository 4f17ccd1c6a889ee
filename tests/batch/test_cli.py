"""Argument checks of ``adaptclip-med batch`` (thin CLI: errors are one line, exit code 2)."""

from __future__ import annotations

import importlib.util

from typer.testing import CliRunner

from tests.support.dicom_studies import CLI_SHIM, tiny_cli_args


def app():
    spec = importlib.util.spec_from_file_location("batch_cli", CLI_SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def invoke(*args: str):
    return CliRunner().invoke(app(), ["batch", *args, *tiny_cli_args()])


def test_source_and_dicomweb_are_exclusive(tmp_path):
    result = invoke(str(tmp_path), "--dicomweb", "http://127.0.0.1:9/dicom-web", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "either a SOURCE folder or --dicomweb URL" in result.output
    result = invoke("--out", str(tmp_path / "out"))
    assert result.exit_code == 2


def test_stow_and_qido_filters_need_dicomweb(tmp_path):
    assert "--stow needs --dicomweb" in invoke(str(tmp_path), "--stow", "--out", str(tmp_path / "o")).output
    result = invoke(str(tmp_path), "--modality", "CT", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "QIDO filters" in result.output
    result = invoke("--dicomweb", "http://127.0.0.1:9/dicom-web", "--qido", "nonsense", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "is not KEY=VALUE" in result.output


def test_bad_rules_file_is_a_one_line_error(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("min_slice: 3\n")
    result = invoke(str(tmp_path), "--rules", str(rules), "--out", str(tmp_path / "out"))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: ") and "rules.yaml: unknown rule(s) min_slice; known: modalities" in lines[0]


def test_unreachable_pacs_fails_discovery_with_one_line(tmp_path):
    result = invoke("--dicomweb", "http://127.0.0.1:9/dicom-web", "--retries", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.strip() == "error: QIDO study search failed (ConnectionError)"
