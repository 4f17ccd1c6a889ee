"""Thresholds named for what they are, and one normal/abnormal study flag at the operating threshold
in study.json, worklist.csv, the ``score`` output and the dashboard worklist."""

from __future__ import annotations

import csv
import json

import pytest

from adaptclip_med.batch.journal import DONE, StudyRecord
from adaptclip_med.batch.worklist import write_worklist
from adaptclip_med.dashboard.worklist_page import score_bar_range
from adaptclip_med.outputs.thresholds import ABNORMAL, NORMAL, flag_of, study_flag
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.worklist import read_worklist_csv, study_entry
from adaptclip_med.volume.compare import score_with_methods


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, demo_data, tiny_options):
    """The lesion study scored at a threshold its map reaches (abnormal) and at 1.0 (normal)."""
    base = tmp_path_factory.mktemp("flag")
    low = score_with_methods(demo_data.study_dir, base / "low", [tiny_options.with_output(threshold=0.0)])
    high = score_with_methods(demo_data.study_dir, base / "high", [tiny_options.with_output(threshold=1.0)])
    return base, low, high


def test_study_json_names_each_threshold_and_flags_the_study(two_runs):
    base, low_lines, high_lines = two_runs
    low = json.loads((base / "low" / "study.json").read_text())
    high = json.loads((base / "high" / "study.json").read_text())
    for report, flag in ((low, ABNORMAL), (high, NORMAL)):
        pixel = report["thresholds"]["pixel"]
        assert pixel["value"] == report["threshold"] and pixel["operating"] is True and "mask" in pixel["applies_to"]
        assert report["study_flag"]["flag"] == flag == flag_of(report)
        assert report["study_flag"]["operating_threshold"] == report["threshold"]
        assert (report["mask_voxels"] > 0) == (flag == ABNORMAL)  # the flag and the outline never disagree
    assert "ABNORMAL at the operating pixel threshold 0.0000" in low_lines[0]
    assert "NORMAL at the operating pixel threshold 1.0000" in high_lines[0]
    assert study_flag(0.5, 0.5) == ABNORMAL and study_flag(0.49, 0.5) == NORMAL and study_flag(float("nan"), 0.1) == NORMAL


def test_worklist_csv_and_dashboard_worklist_carry_the_flag(two_runs):
    base, _, _ = two_runs
    records = [StudyRecord("low", DONE, score=0.2, top_slice=3, output="low"),
               StudyRecord("high", DONE, score=0.1, top_slice=0, output="high"),
               StudyRecord("broken", "failed", reason="unreadable")]
    path = write_worklist(base, records)
    rows = {r["study_key"]: r for r in csv.DictReader(open(path))}
    assert rows["low"]["flag"] == ABNORMAL and rows["high"]["flag"] == NORMAL and rows["broken"]["flag"] == ""
    assert rows["low"]["top_slice"] == "4"  # the viewer's 1-based number
    entries = {e.study_key: e for e in read_worklist_csv(path, AllowedRoots([base]))}
    assert entries["low"].flag == ABNORMAL and entries["high"].flag == NORMAL
    assert study_entry(base / "low", "low").flag == ABNORMAL and study_entry(base / "high", "high").flag == NORMAL


def test_older_study_json_gets_its_flag_from_the_mask_and_score_bars_use_the_listed_span():
    assert flag_of({"mask_voxels": 12}) == ABNORMAL and flag_of({"mask_voxels": 0}) == NORMAL and flag_of({}) is None
    low, high = score_bar_range([0.140, 0.145, None])
    assert high == pytest.approx(0.145) and low < 0.140 and (0.145 - low) / (high - low) > (0.140 - low) / (high - low)
    assert (0.145 - 0.140) / (high - low) > 0.5  # 0.140 and 0.145 no longer look the same
    assert score_bar_range([]) == (0.0, 1.0)


def test_score_with_on_a_scored_study_does_not_say_not_scored(two_runs, tmp_path):
    from adaptclip_med.dashboard.scoring_panel import scoring_heading

    base, _, _ = two_runs
    assert scoring_heading(base / "low").startswith("scored with adaptclip; score it again")
    assert scoring_heading(tmp_path / "nothing") == "not scored yet" and scoring_heading(None) == "not scored yet"


def test_references_build_names_both_calibrated_thresholds(tmp_path, demo_data, tiny_options):
    from adaptclip_med.cli.references import calibration_line
    from adaptclip_med.volume.pipeline import model_for
    from adaptclip_med.volume.bank_builder import build_reference_bank
    from adaptclip_med.volume.bank.reader import ReferenceBank

    path = build_reference_bank("ct-head", list(demo_data.reference_dirs), model_for(tiny_options),
                                tiny_options.preprocessing(), tmp_path / "banks", batch_size=8)
    calibration = ReferenceBank.open(path).calibration
    line = calibration_line(path)
    assert line.startswith(f"pixel threshold {calibration['pixel_threshold']:.4f} (map value; 99.9 % quantile")
    assert f"slice score threshold {calibration['normal_slice_score_max']:.4f} (highest normal slice score)" in line
    assert "; threshold" not in line and not line.startswith("threshold")
