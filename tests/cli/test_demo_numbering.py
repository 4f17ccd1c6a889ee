"""The demo's printed slices use the viewer's 1-based numbering, like its overlay file names and
slices.csv (issue 25: one numbering everywhere; the demo printed 0-based indices beside
`demo_overlay_slice007.png` for the same image)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner


def test_demo_prints_one_based_slice_numbers(monkeypatch, tmp_path):
    import adaptclip_med.demo.run as demo_run
    from adaptclip_med.cli.main import app

    study = SimpleNamespace(score=0.14, top_slices=[6, 5], out_dir=tmp_path / "study")
    normal = SimpleNamespace(score=0.04, top_slices=[0], out_dir=tmp_path / "normal")
    lesions = SimpleNamespace(detected=1, lesions=1, false_positive_components=0, dice=0.7,
                              per_lesion=[{"lesion": 1, "kind": "mass", "voxels": 10, "slices": [5, 6],
                                           "peak_probability": 0.07, "detected": True, "dice": 0.7}])
    result = SimpleNamespace(abnormal=study, normal=normal, lesions=lesions, normal_false_positive_components=0,
                             seconds=1.0, report=tmp_path / "demo_report.html",
                             figures={"overlay_slice007": Path("demo_overlay_slice007.png")}, out_dir=tmp_path)
    monkeypatch.setattr(demo_run, "run_demo", lambda out, seed=0: result)
    output = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)]).output
    assert "top slices [7, 6]" in output
    assert "voxels on slices [6, 7]" in output
    assert "demo_overlay_slice007.png" in output and "numbered from 1" in output
