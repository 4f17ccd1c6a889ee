"""One output that cannot be written never throws away the others.

Reproduced on main: a source header value the SEG writer refuses (a bad SpecificCharacterSet) made
``score`` exit 2 with NO outputs at all: map, mask, slices.csv and overlays were computed and lost.
Every writer unit is now isolated (:func:`~adaptclip_med.outputs.study_writers.run_isolated`), so
writers added later (SR, KOS) get the same treatment.
"""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest
from typer.testing import CliRunner


@pytest.fixture()
def scorer(tiny_loaded, tiny_options):
    from adaptclip_med.volume.pipeline import make_scorer

    return make_scorer(tiny_options, tiny_loaded)


@pytest.fixture()
def bad_charset_study(demo_data, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(demo_data.study_dir, folder)
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 999"
        with pytest.warns(UserWarning, match="Unknown encoding"):
            ds.save_as(path)
    return folder


def test_a_refused_seg_loses_only_the_seg(bad_charset_study, scorer, tmp_path):
    from adaptclip_med.volume.study_run import score_study

    out = tmp_path / "out"
    outputs = score_study(bad_charset_study, out, scorer)
    names = {p.name for p in out.iterdir()}
    assert {"anomaly_probability.nii.gz", "anomaly_mask.nii.gz", "slices.csv", "score_plot.png", "study.json"} <= names
    assert any(n.startswith("overlay_top1_") for n in names) and "anomaly_seg.dcm" not in names
    report = json.loads((out / "study.json").read_text())
    reason = report["not_written"]["dicom_seg"]
    assert reason.startswith("DICOM SEG not written") and "\n" not in reason  # no input path in study.json
    assert "dicom_seg" not in report["files"] and outputs.not_written == report["not_written"]


def test_any_failing_writer_is_isolated_and_its_library_message_is_not_quoted(demo_data, scorer, tmp_path, monkeypatch):
    from adaptclip_med.volume.study_run import score_study

    def refuses(*args, **kwargs):
        raise RuntimeError("value 'SECRETSURNAME^JANE' rejected")

    monkeypatch.setattr("adaptclip_med.outputs.overlay.save_overlay_png", refuses)
    out = tmp_path / "out"
    score_study(demo_data.study_dir, out, scorer)
    report = json.loads((out / "study.json").read_text())
    assert report["not_written"] == {"overlays": "overlays not written (RuntimeError; --debug shows details)"}
    assert "anomaly_seg.dcm" in report["files"].values()


def test_a_full_disk_still_fails_the_study_whole(demo_data, scorer, tmp_path, monkeypatch):
    from adaptclip_med.volume.study_run import score_study

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("adaptclip_med.outputs.overlay.save_overlay_png", full)
    from adaptclip_med.errors import AdaptClipError

    with pytest.raises(AdaptClipError, match="no space left"):
        score_study(demo_data.study_dir, tmp_path / "out", scorer)
    assert not (tmp_path / "out").exists()


def test_score_cli_exits_0_and_names_what_was_not_written(bad_charset_study, tmp_path, monkeypatch):
    from adaptclip_med.cli.main import app

    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    args = ["score", str(bad_charset_study), "--out", str(tmp_path / "out"), "--zero-shot", "--window", "brain",
            "--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0", "--adapters", "untrained",
            "--image-size", "56", "--offline", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + result.stderr
    assert "(not written: dicom_seg; reasons in study.json)" in result.stdout
    assert "Traceback" not in result.output + result.stderr
