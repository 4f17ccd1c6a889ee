"""One study run: every surface scores and writes through ``run_study``; the writers get a plain
scoring record, never the scorer; one run reads the reference bank once."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.support.bank_reads import count_bank_reads


@pytest.fixture()
def bank_reads(monkeypatch):
    """Every read of a ``bank.json`` from now on (its folder name, once per read)."""
    return count_bank_reads(monkeypatch)


@pytest.fixture()
def runs(monkeypatch):
    """The output folders written by :func:`study_run.write_outputs`, in call order."""
    from adaptclip_med.volume import study_run

    folders: list[pathlib.Path] = []
    original = study_run.write_outputs

    def spy(volume, result, scoring, out_dir, *args, **kwargs):
        assert isinstance(scoring, study_run.ScoringRecord)  # plain data, not the scorer
        folders.append(pathlib.Path(out_dir))
        return original(volume, result, scoring, out_dir, *args, **kwargs)

    monkeypatch.setattr(study_run, "write_outputs", spy)
    return folders


def test_the_scoring_record_says_what_the_scorer_described_in_the_same_order(bank, tiny_loaded, tiny_options):
    from adaptclip_med.outputs.scoring_record import BankRecord
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.study_run import scoring_record

    scorer = make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None), tiny_loaded)
    record = scoring_record(scorer)
    described = scorer.describe()
    assert record.describe() == described and list(record.describe()) == list(described)  # the SR lists them in order
    assert list(record.describe()["reference_bank"]) == list(described["reference_bank"])
    assert isinstance(record.reference_bank, BankRecord) and record.reference_bank.name == "head"
    assert record.display_name == tiny_loaded.display_name and record.calibration == scorer.bank.calibration
    assert record.threshold == scorer.threshold and record.threshold_source.startswith("calibrated on bank 'head'")


def test_a_run_writes_study_json_from_the_record_and_returns_the_result(demo_data, bank, tiny_loaded, tiny_options,
                                                                       tmp_path, runs):
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.study_run import run_study

    scorer = make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None), tiny_loaded)
    volume, _ = load_study(demo_data.study_dir)
    outputs = run_study(volume, scorer, tmp_path / "out", other_series=2, extra_report={"study_key": "k1"})
    report = json.loads((tmp_path / "out" / "study.json").read_text())
    assert runs == [tmp_path / "out"]
    assert report["scoring"] == json.loads(json.dumps(scorer.describe(), default=str))
    assert report["study_key"] == "k1" and report["source"]["other_image_series_in_input"] == 2
    assert outputs.result.probability.shape == volume.array.shape and outputs.score == outputs.result.score
    assert outputs.top_slices == outputs.result.top_slices and outputs.comparability is outputs.result.comparability
    assert outputs.files["study_json"] == tmp_path / "out" / "study.json" and outputs.not_written == {}


def test_a_run_on_an_opened_bank_reads_bank_json_no_more(demo_data, bank, tiny_loaded, tiny_options, tmp_path,
                                                         bank_reads):
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.pipeline import make_scorer, open_bank_for
    from adaptclip_med.volume.study_run import run_study

    opened = open_bank_for(tiny_loaded, bank)
    assert bank_reads == ["head"]
    scorer = make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None), tiny_loaded, opened)
    volume, _ = load_study(demo_data.study_dir)
    run_study(volume, scorer, tmp_path / "a")
    run_study(volume, scorer, tmp_path / "b")
    assert scorer.bank is opened and bank_reads == ["head"]  # two studies, one read


def test_a_scorer_with_a_loaded_model_opens_the_bank_once(bank, tiny_loaded, tiny_options, bank_reads):
    from adaptclip_med.volume.pipeline import make_scorer

    make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None), tiny_loaded)
    assert bank_reads == ["head"]  # no separate read of the bank's class name: the model is already chosen


def test_a_scorer_that_still_chooses_its_model_reads_the_bank_once(bank, tiny_options, bank_reads):
    """``score`` without ``--class-name``: the bank's class name names the model, read from the one
    opened bank, which is then checked against the loaded model."""
    from adaptclip_med.volume.pipeline import make_scorer

    scorer = make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None))
    assert bank_reads == ["head"] and scorer.bank is not None


def test_a_bank_of_other_settings_is_still_refused_naming_the_field(bank, tiny_options):
    from adaptclip_med.errors import AdaptClipError
    from adaptclip_med.volume.pipeline import make_scorer

    other = tiny_options.with_references(bank=str(bank)).with_slicing(window=None).with_model(image_size=112)
    with pytest.raises(AdaptClipError, match="built with other model settings: .*image"):
        make_scorer(other)


def test_score_the_api_the_method_comparison_and_the_dashboard_all_run_through_run_study(
        demo_data, bank, tiny_loaded, tiny_options, tmp_path, runs):
    import adaptclip_med as acm
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.review.studies import score_for_review
    from adaptclip_med.volume.compare import score_with_methods
    from adaptclip_med.volume.pipeline import make_scorer

    options = tiny_options.with_references(bank=str(bank)).with_slicing(window=None)
    score_with_methods(demo_data.study_dir, tmp_path / "cli", [options])
    acm.score_study(demo_data.study_dir, tiny_loaded, bank=bank, out=tmp_path / "api")
    volume, _ = load_study(demo_data.study_dir)
    study = score_for_review(volume, "k1", tmp_path / "review", make_scorer(options, tiny_loaded))
    assert runs == [tmp_path / "cli", tmp_path / "api", tmp_path / "review"]
    assert study.score == json.loads((tmp_path / "review" / "study.json").read_text())["score"]
