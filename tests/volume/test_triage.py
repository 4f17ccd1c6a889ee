"""Triage mode (volume/triage.py): which slices it scores, that it finds what full scoring finds on
a phantom with a method that responds to lesions, how outputs mark unscored slices, and the CLI
flag of ``score`` and ``batch``."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.volume.triage import NOT_SCORED_REASON, TriagePlan, coarse_positions, refine_positions, run_triage

THRESHOLD = 0.5


def _fake_scores(values: np.ndarray):
    """A score_batch over fixed per-position values (slice score = map peak), recording the asks."""
    asked: list[list[int]] = []

    def score_batch(positions: list[int]):
        asked.append(list(positions))
        return values[positions], values[positions]

    return score_batch, asked


def test_coarse_positions_cover_both_ends():
    assert coarse_positions(20, 4) == [0, 4, 8, 12, 16, 19]
    assert coarse_positions(17, 4) == [0, 4, 8, 12, 16]
    assert coarse_positions(1, 4) == [0]
    assert coarse_positions(0, 4) == []


def test_triage_refines_a_hot_run_until_it_goes_cold():
    values = np.full(20, 0.1)
    values[7:12] = 0.9  # a lesion on positions 7..11; coarse slice 8 sees it
    score_batch, asked = _fake_scores(values)
    run = run_triage(20, score_batch, TriagePlan(stride=4, top_k=1), THRESHOLD)
    assert asked == [[0, 4, 8, 12, 16, 19], [7, 9], [6, 10], [11]]
    assert run.rounds == [6, 2, 2, 1]
    assert set(run.scored) == {0, 4, 8, 12, 16, 19, 6, 7, 9, 10, 11}
    # every lesion slice scored; every unscored slice neighbours only cold ones
    assert set(range(7, 12)) <= set(run.scored)
    assert refine_positions(run.scores, run.peaks, THRESHOLD, 1) == []
    assert run.describe()["scored_fraction"] == pytest.approx(11 / 20)


def test_top_k_slices_are_refined_even_below_threshold():
    values = np.linspace(0.0, 0.3, 13)  # nothing above threshold; the highest are at the far end
    values[5] = 0.45
    score_batch, _ = _fake_scores(values)
    run = run_triage(13, score_batch, TriagePlan(stride=4, top_k=1), THRESHOLD)
    # coarse 0, 4, 8, 12: the top one (12) is refined (11), then 11 is not the top: stop
    assert set(run.scored) == {0, 4, 8, 12, 11}
    assert np.isnan(run.scores[5])  # documented limit: a peak between coarse slices that stays cold is not seen


def test_a_lesion_thinner_than_the_stride_between_coarse_slices_is_missed():
    values = np.full(20, 0.1)
    values[9:12] = 0.9
    score_batch, _ = _fake_scores(values)
    run = run_triage(20, score_batch, TriagePlan(stride=4, top_k=1), THRESHOLD)
    assert np.isnan(run.scores[9:12]).all()


def test_plan_validation():
    with pytest.raises(AdaptClipError, match="at least 2"):
        TriagePlan(stride=1)
    with pytest.raises(AdaptClipError, match="top_k"):
        TriagePlan(stride=3, top_k=0)


def test_nan_slice_scores_are_refused():
    with pytest.raises(AdaptClipError, match="NaN"):
        run_triage(6, lambda p: (np.full(len(p), np.nan), np.zeros(len(p))), TriagePlan(2), THRESHOLD)


# ------------------------------------------------------------------ with a method that sees lesions
TOY_THRESHOLD = 0.3
SHAPE = (24, 64, 64)


@pytest.fixture(scope="module")
def toy():
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.methods.registry import unregister_method

    from tests.support import toy_methods

    toy_methods.register()
    yield load_method(MethodSpec(method=toy_methods.NAME, image_size=64))
    unregister_method(toy_methods.NAME)


@pytest.fixture(scope="module")
def toy_bank(toy, tmp_path_factory):
    from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window

    from tests.support.triage import write_normal_bank

    return write_normal_bank(tmp_path_factory.mktemp("triage-bank"), 3, SHAPE, toy,
                             SlicePreprocessing(window=parse_window("brain")))


@pytest.fixture(scope="module")
def lesion_study():
    from adaptclip_med.demo.phantom import make_head_ct_phantom

    from tests.support.phantoms import phantom_volume

    hu, truth = make_head_ct_phantom(3, SHAPE, lesions=3, lesion_rz=(2.5, 4.0), lesion_rxy=(0.05, 0.08))
    return phantom_volume(hu, "triage test study"), truth.astype(bool)


def _scorer(toy, bank_path, stride):
    from adaptclip_med.volume.bank.reader import ReferenceBank
    from adaptclip_med.volume.scoring import VolumeScorer

    return VolumeScorer(toy, ReferenceBank.open(bank_path), None, batch_size=8, threshold=TOY_THRESHOLD,
                        triage=TriagePlan(stride) if stride else None)


def test_triage_finds_every_lesion_full_scoring_finds(toy, toy_bank, lesion_study):
    from tests.support.triage import lesion_hits

    volume, truth = lesion_study
    full = _scorer(toy, toy_bank, None).score(volume)
    triaged = _scorer(toy, toy_bank, 3).score(volume)
    hits_full, lesions = lesion_hits(truth, full.mask)
    assert lesions == 3 and hits_full >= 2  # the toy does see this phantom's lesions
    assert lesion_hits(truth, triaged.mask) == (hits_full, lesions)
    assert triaged.score == pytest.approx(full.score)  # the hottest slice was reached
    assert 0 < triaged.triage["scored"] < len(full.scored())
    # scored slices are identical to full scoring; unscored ones carry no map and no score
    for slice_full, slice_tri in zip(full.slices, triaged.slices):
        z = slice_tri.index
        if slice_tri.skipped:
            assert slice_tri.skip_reason == NOT_SCORED_REASON and np.isnan(slice_tri.score)
            assert not triaged.probability[z].any() and not triaged.mask[z].any()
        else:
            assert slice_tri.score == pytest.approx(slice_full.score)
            np.testing.assert_allclose(triaged.probability[z], full.probability[z], atol=1e-6)
    # the study score comes from scored slices only
    assert triaged.score == pytest.approx(max(s.score for s in triaged.scored()))
    # every lesion slice the full mask marks is scored under triage
    lesion_slices = np.flatnonzero((full.mask & truth).reshape(SHAPE[0], -1).any(1))
    assert all(not triaged.slices[z].skipped for z in lesion_slices)


def test_outputs_mark_unscored_slices(toy, toy_bank, lesion_study, tmp_path):
    from adaptclip_med.volume.study_run import run_study

    volume, _ = lesion_study
    scorer = _scorer(toy, toy_bank, 4)
    outputs = run_study(volume, scorer, tmp_path / "out")
    report = json.loads((outputs.out_dir / "study.json").read_text())
    unscored = report["triage"]["unscored_slices"]
    assert report["slices"]["not_scored_triage"] == len(unscored) > 0
    assert report["slices"]["scored"] + len(unscored) + report["slices"]["background"] == report["slices"]["total"]
    assert report["triage"]["stride"] == 4 and report["scoring"]["triage"] == {"stride": 4, "top_k": 3}
    assert "not interpolated" in report["triage"]["unscored_maps"]
    rows = {int(r["array_index"]): r for r in csv.DictReader(open(outputs.out_dir / "slices.csv"))}
    for z in unscored:
        assert rows[z]["score"] == "" and rows[z]["skipped"] == "true" and rows[z]["skip_reason"] == NOT_SCORED_REASON
    assert all(rows[z]["score"] != "" for z in rows if z not in unscored)
    import nibabel as nib

    probability = np.asanyarray(nib.load(str(outputs.out_dir / "anomaly_probability.nii.gz")).dataobj)
    assert probability.max() > 0  # scored slices carry their maps


def test_full_scoring_reports_no_triage(toy, toy_bank, lesion_study, tmp_path):
    from adaptclip_med.volume.study_run import run_study

    outputs = run_study(lesion_study[0], _scorer(toy, toy_bank, None), tmp_path / "full")
    report = json.loads((outputs.out_dir / "study.json").read_text())
    assert "triage" not in report and report["scoring"]["triage"] is None
    assert report["slices"]["not_scored_triage"] == 0 and report["slices"]["scored"] == SHAPE[0]


# ------------------------------------------------------------------ CLI
runner = CliRunner()


@pytest.fixture(scope="module")
def dicom_study(lesion_study, tmp_path_factory):
    from adaptclip_med.demo.phantom import write_dicom_series

    folder = tmp_path_factory.mktemp("triage-dicom") / "study"
    write_dicom_series(lesion_study[0].array, folder, spacing=(1.0, 1.0, 1.0))
    return folder


def _invoke(args):
    from adaptclip_med.cli.main import app

    return runner.invoke(app, args)


def test_score_cli_triage_flag(toy, toy_bank, dicom_study, tmp_path):
    from tests.support.toy_methods import NAME

    result = _invoke(["score", str(dicom_study), "--method", NAME, "--references", str(toy_bank), "--threshold",
                      str(TOY_THRESHOLD), "--triage", "4", "--batch-size", "auto", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s" / "study.json").read_text())
    assert report["triage"]["stride"] == 4 and report["slices"]["not_scored_triage"] > 0
    refused = _invoke(["score", str(dicom_study), "--method", NAME, "--references", str(toy_bank), "--triage", "1",
                       "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "--triage" in refused.output
    bad_batch = _invoke(["score", str(dicom_study), "--method", NAME, "--references", str(toy_bank), "--batch-size", "0",
                         "--out", str(tmp_path / "y")])
    assert bad_batch.exit_code == 2 and "--batch-size 0: give a positive number of slices or 'auto'" in bad_batch.output


def test_batch_cli_triage_flag(toy, toy_bank, dicom_study, tmp_path):
    from tests.support.toy_methods import NAME

    tree = tmp_path / "incoming"
    shutil.copytree(dicom_study, tree / "s0")
    result = _invoke(["batch", str(tree), "--method", NAME, "--references", str(toy_bank), "--threshold",
                      str(TOY_THRESHOLD), "--triage", "3", "--out", str(tmp_path / "wl")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "wl" / "worklist.csv")))
    assert len(rows) == 1 and rows[0]["status"] == "done"
    report = json.loads((tmp_path / "wl" / rows[0]["output"] / "study.json").read_text())
    assert report["triage"]["stride"] == 3 and 0 < report["triage"]["scored"] < SHAPE[0]
