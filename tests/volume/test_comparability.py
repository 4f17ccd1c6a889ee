"""The comparability guard (issue 24, item 1), with the packaged demo model against a small head bank.

Each test first reproduces the failure the issue reports: pydicom's body-CT slice scored 0.296
against the head bank with no warning (and ranked above the real lesion study), an MR slice 0.150;
a study reaching below the bank's scans had its lowest slices matched to the bank's end slice.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptclip_med.errors import InputError

SLICES, SIZE = 10, 128


@pytest.fixture(scope="module")
def demo_method():
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for

    return model_for(demo_options())


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    from adaptclip_med.demo.dataset import make_ct_demo_dataset

    return make_ct_demo_dataset(tmp_path_factory.mktemp("heads") / "data", seed=0, normals=4, slices=SLICES, size=SIZE)


@pytest.fixture(scope="module")
def head_bank(heads, demo_method, tmp_path_factory):
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.bank_builder import build_reference_bank

    return build_reference_bank("head", heads.normal_dirs[:3], demo_method, demo_options().preprocessing(),
                                tmp_path_factory.mktemp("banks"), calibrate=False)


@pytest.fixture(scope="module")
def scorer(head_bank, demo_method):
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import make_scorer

    return make_scorer(demo_options(head_bank), demo_method)


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(name))


def _slices_csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "slices.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _cli(*args: str):
    from adaptclip_med.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_bank_records_coverage_and_a_leave_one_scan_out_bound(head_bank):
    meta = json.loads((head_bank / "bank.json").read_text())
    distribution = meta["comparability"]["distribution"]
    assert distribution["method"] == "leave-one-scan-out" and distribution["slices"] == 3 * SLICES
    assert distribution["bound"] == pytest.approx(1.5 * distribution["max"])
    assert all(entry["body_extent_mm"] == pytest.approx((SLICES - 1) * 5.0) for entry in meta["scans"])


def test_body_ct_slice_against_the_head_bank_is_not_comparable_and_has_no_study_score(scorer, tmp_path):
    """Before: CT_small scored 0.296 against the head bank, silently, above the lesion study."""
    from adaptclip_med.volume.study_run import score_study

    outputs = score_study(_testdata("CT_small.dcm"), tmp_path / "body", scorer)
    assert np.isnan(outputs.score)
    assert outputs.comparability.status == "not comparable"
    report = json.loads((tmp_path / "body" / "study.json").read_text())
    verdict = report["comparability"]
    assert report["score"] is None
    assert verdict["status"] == "not comparable" and verdict["out_of_distribution_slices"] == [0]
    assert verdict["reasons"][0] == "1 of 1 body slices out of the reference distribution"
    # the bank's physical grid (issue 27) adds the in-plane field of view the study lacks
    assert len(verdict["reasons"]) == 2 and "field of view (85x85 mm) covers 54%" in verdict["reasons"][1]
    assert verdict["score_all_scored_slices"] > 0.1  # what would have been reported silently
    assert verdict["distribution"]["largest_distance"] > 3 * verdict["distribution"]["bound"]
    assert report["mask_voxels"] == 0  # before: 59 % of the slice masked, in the SEG sent to the PACS
    row = _slices_csv(tmp_path / "body")[0]
    assert row["comparability"] == "out of reference distribution" and float(row["reference_distance"]) > 0


def test_lesion_study_and_held_out_normal_stay_comparable(scorer, heads):
    """The guard must not hide lesions: no slice of either study is flagged."""
    from adaptclip_med.io.loader import load_study

    lesion = scorer.score(load_study(heads.study_dir)[0])
    normal = scorer.score(load_study(heads.normal_dirs[3])[0])
    lesion_slices = set(np.flatnonzero(heads.labels.reshape(SLICES, -1).any(axis=1)).tolist())
    assert lesion_slices, "the phantom has lesions"
    for result in (lesion, normal):
        assert result.comparability.status == "comparable", result.comparability.line()
        assert result.comparability.out_of_distribution == [] and result.comparability.outside_coverage == []
    assert lesion.score == pytest.approx(max(s.score for s in lesion.scored()))
    bound = lesion.comparability.distribution["bound"]
    assert max(s.reference_distance for s in lesion.scored() if s.index in lesion_slices) < bound


def test_mr_study_is_refused_in_one_line_unless_overridden(head_bank, tmp_path):
    """Before: MR_small scored 0.150 against the CT head bank, with no more than a window warning."""
    args = ["score", _testdata("MR_small.dcm"), "--adapters", "demo", "--references", head_bank]
    refused = _cli(*args, "--out", tmp_path / "refused")
    assert refused.exit_code == 2, refused.output
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.output
    assert "MR" in errors[0] and "CT" in errors[0] and "--allow-other-modality" in errors[0]
    assert not (tmp_path / "refused" / "study.json").exists()

    forced = _cli(*args, "--out", tmp_path / "forced", "--allow-other-modality")
    assert forced.exit_code == 0, forced.output
    assert "no study score (not comparable)" in forced.output
    report = json.loads((tmp_path / "forced" / "study.json").read_text())
    assert report["comparability"]["modality"] == {"study": "MR", "bank": ["CT"], "checked": True, "matches": False,
                                                   "override": True}
    assert report["scoring"]["allow_other_modality"] is True
    assert report["comparability"]["status"] == "not comparable"  # and the distribution check flags it too


def test_modality_check_without_the_flag_raises_input_error(scorer):
    from adaptclip_med.io.volume import Volume

    volume = Volume(np.zeros((2, 64, 64), np.float32), (5.0, 1.0, 1.0), "MR", np.arange(2) * 5.0, "nifti", "mr")
    with pytest.raises(InputError, match="the study is MR but reference bank 'head' holds CT scans"):
        scorer.score(volume)


def test_study_reaching_below_the_bank_is_partly_comparable_and_aligned(scorer, head_bank):
    """Before: relative matching stretched the study over the bank, the trunk slices were matched
    to the skull base and the head slices to the wrong level."""
    from adaptclip_med.demo.ct_head import PIXEL_MM, SLICE_MM
    from adaptclip_med.demo.off_coverage import shifted_head_hu
    from adaptclip_med.io.volume import Volume
    from adaptclip_med.volume.bank.reader import ReferenceBank

    below = 4
    hu = shifted_head_hu(1500, slices=SLICES, size=SIZE, below=below)
    volume = Volume(hu, (SLICE_MM, PIXEL_MM, PIXEL_MM), "CT", np.arange(SLICES) * SLICE_MM, "nifti", "shifted")
    result = scorer.score(volume)
    verdict = result.comparability
    assert verdict.status == "partly comparable", verdict.line()
    assert verdict.coverage["placement"] == "aligned" and verdict.coverage["shift_mm"] == pytest.approx(-below * SLICE_MM, abs=SLICE_MM / 2)
    flagged = set(verdict.outside_coverage) | set(verdict.out_of_distribution)
    assert flagged == set(range(below))  # every trunk slice, no head slice
    for z in verdict.outside_coverage:
        assert result.slices[z].skipped and result.slices[z].skip_reason.startswith("not comparable: outside")
        assert not result.probability[z].any()
    bank = ReferenceBank.open(head_bank)
    first_head = result.slices[below]
    matched_positions = [float(bank.scans[scan].relative_position[row]) for scan, row in first_head.matched]
    assert max(matched_positions) < 0.3  # the head's lowest slice is matched to the bank's lowest slices
    assert result.score == pytest.approx(max(s.score for s in result.comparable_scored()))


def test_bank_built_before_the_guard_skips_the_distribution_check_with_a_note(head_bank, tmp_path):
    old = tmp_path / "old-bank"
    shutil.copytree(head_bank, old)
    meta = json.loads((old / "bank.json").read_text())
    del meta["comparability"]
    for entry in meta["scans"]:  # the coverage falls back to the stored rows and slice spacing
        del entry["body_extent_mm"], entry["slice_spacing_mm"]
    (old / "bank.json").write_text(json.dumps(meta))
    run = _cli("score", _testdata("CT_small.dcm"), "--adapters", "demo", "--references", old, "--out", tmp_path / "out")
    assert run.exit_code == 0, run.output
    notes = [line for line in run.output.splitlines() if "note:" in line]
    assert len(notes) == 1 and "built before the distribution check existed" in notes[0]
    report = json.loads((tmp_path / "out" / "study.json").read_text())
    assert report["comparability"]["distribution"] is None
    assert report["comparability"]["coverage"]["extent_mm"] == pytest.approx((SLICES - 1) * 5.0)
    assert any("distribution check" in note for note in report["comparability"]["notes"])


def test_batch_lists_the_body_ct_with_its_reason_below_the_lesion_study(head_bank, heads, tmp_path):
    from adaptclip_med.batch.discovery import FolderSource
    from adaptclip_med.batch.runner import run_batch
    from adaptclip_med.batch.worker import BatchOptions
    from adaptclip_med.demo.run import demo_options

    source = tmp_path / "in"
    shutil.copytree(heads.study_dir, source / "head")
    (source / "body").mkdir()
    shutil.copy(_testdata("CT_small.dcm"), source / "body" / "ct.dcm")
    summary = run_batch(FolderSource(source), demo_options(head_bank), BatchOptions(out_dir=tmp_path / "out"))
    assert summary.scored == 2
    with open(tmp_path / "out" / "worklist.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["comparability"].split(":")[0] for r in rows] == ["comparable", "not comparable"]
    assert rows[0]["score"] != "" and rows[1]["score"] == ""
    assert "out of the reference distribution" in rows[1]["comparability"]

    from adaptclip_med.review.paths import AllowedRoots
    from adaptclip_med.review.worklist import build_worklist, discover_results

    entries = build_worklist(discover_results(tmp_path / "out", AllowedRoots([tmp_path])), {})
    assert entries[0].comparability == "comparable" and entries[0].score is not None
    assert entries[1].comparability.startswith("not comparable") and entries[1].score is None

    from adaptclip_med.review.study_data import from_output_dir

    study = from_output_dir(rows[1]["study_key"], tmp_path / "out" / rows[1]["output"])
    assert np.isnan(study.score) and study.comparability.startswith("not comparable")


def test_one_scan_bank_says_why_the_distribution_check_is_skipped(heads, demo_method, tmp_path):
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.bank_builder import build_reference_bank

    bank = build_reference_bank("one", heads.normal_dirs[:1], demo_method, demo_options().preprocessing(), tmp_path)
    result = make_scorer(demo_options(bank), demo_method).score(load_study(heads.normal_dirs[3])[0])
    assert result.comparability.status == "comparable" and result.comparability.distribution is None
    assert result.comparability.notes == ["bank 'one' has no calibrated distribution bound (one normal scan: nothing "
                                          "to leave out): the distribution check was skipped"]
