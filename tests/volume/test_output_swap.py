"""A study's outputs replace the previous folder whole, only on success; 2-D DICOM with --parametric-map."""

from __future__ import annotations

import json
import shutil

import pytest
from pydicom.data import get_testdata_file


@pytest.fixture()
def scorer(tiny_loaded, tiny_options):
    from adaptclip_med.volume.pipeline import make_scorer

    return make_scorer(tiny_options, tiny_loaded)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_failed_rewrite_keeps_the_previous_result_and_success_drops_stale_files(demo_data, scorer, tmp_path,
                                                                                monkeypatch):
    from adaptclip_med.volume.study_run import score_study

    out = tmp_path / "out"
    score_study(demo_data.study_dir, out, scorer, parametric_map=True)
    (out / "overlay_top9_slice0099.png").write_bytes(b"another patient's overlay")
    (out / "my_notes.txt").write_text("kept")
    before = _snapshot(out)
    assert "anomaly_pmap.dcm" in before and "study.json" in before

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("adaptclip_med.outputs.plots.save_score_plot", broken)
    with pytest.raises(Exception):
        score_study(demo_data.study_dir, out, scorer)
    assert _snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
    monkeypatch.undo()

    outputs = score_study(demo_data.study_dir, out, scorer)
    names = {p.name for p in out.iterdir()}
    assert "anomaly_pmap.dcm" not in names and "overlay_top9_slice0099.png" not in names
    assert "my_notes.txt" in names and "study.json" in names
    assert all(path.parent == out and path.is_file() for path in outputs.files.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["examples_palette.dcm", "SC_rgb_rle_2frame.dcm"])
def test_parametric_map_of_2d_dicom_is_skipped_with_a_note_not_a_crash(scorer, tmp_path, name):
    from adaptclip_med.volume.study_run import score_study

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(get_testdata_file(name), source)
    out = score_study(source, tmp_path / "out", scorer, parametric_map=True)
    report = json.loads((tmp_path / "out" / "study.json").read_text())
    assert "dicom_seg" in out.files and "parametric_map" not in out.files
    assert any("frame of reference" in note for note in report["notes"])
