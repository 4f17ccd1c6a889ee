"""Reference banks, slice matching and slice-wise scoring with clinical outputs."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.volume.preprocessing import parse_window, relative_positions
from adaptclip_med.volume.bank_listing import list_banks
from adaptclip_med.volume.reference_bank import ReferenceBank, bank_key, delete_bank, rename_bank
from adaptclip_med.volume.scoring import aggregate_scores


def test_relative_positions_span_the_body_only():
    background = np.array([True, False, False, False, True])
    rel = relative_positions(background)
    assert np.isnan(rel[0]) and np.isnan(rel[4])
    np.testing.assert_allclose(rel[1:4], [0.0, 0.5, 1.0])


def test_aggregates_and_windows():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert aggregate_scores(scores) == pytest.approx(0.9)
    assert aggregate_scores(scores, "topk:2") == pytest.approx(0.8)
    with pytest.raises(AdaptClipError):
        aggregate_scores(scores, "median")
    assert parse_window("brain") == "brain" and parse_window("40,80") == (40.0, 80.0) and parse_window(None) is None
    with pytest.raises(InputError):
        parse_window("40,-5")


def test_bank_contents_and_calibration(bank, tiny_loaded, tiny_options):
    meta = json.loads((bank / "bank.json").read_text())
    # new banks are built on a physical grid (the scans' own here), which is part of the key
    assert meta["grid"]["pixel_mm"] > 0
    assert meta["key"] == bank_key(tiny_loaded, tiny_options.preprocessing(), ReferenceBank.open(bank).grid)
    assert len(meta["scans"]) == 2 and meta["preprocessing"]["window"] == "brain"
    assert meta["calibration"]["method"] == "leave-one-scan-out" and 0 < meta["calibration"]["pixel_threshold"] < 1
    assert "PHANTOM" not in (bank / "bank.json").read_text()  # no patient names
    opened = ReferenceBank.open(bank, expected_identity=tiny_loaded.identity())
    assert opened.scans[0].rows.size <= 8 and len(opened.rows([(0, 0)])[0]) == 4  # four tapped layers per row


def test_bank_is_refused_when_settings_change(bank, tiny_loaded, tiny_options):
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.preprocessing import SlicePreprocessing

    other = {**tiny_loaded.identity(), "image_size": 84}
    with pytest.raises(AdaptClipError, match="rebuild"):
        ReferenceBank.open(bank, expected_identity=other)
    # other image size = other model identity; the message names the field and the matching flag
    with pytest.raises(AdaptClipError, match=r"image_size 56 \(bank\) vs 84 \(now\): pass --image-size 56"):
        make_scorer(tiny_options.with_(bank=str(bank), image_size=84))
    with pytest.raises(AdaptClipError, match="method adaptclip"):  # a bank of one method is refused for another
        ReferenceBank.open(bank, expected_identity={**tiny_loaded.identity(), "method": "winclip"})
    with pytest.raises(AdaptClipError, match="windowed"):
        make_scorer(tiny_options.with_(bank=str(bank), window="bone"), tiny_loaded)


def test_matching_strategies(bank, tiny_loaded):
    opened = ReferenceBank.open(bank)
    by_position = opened.match(0.5, None, per_scan=3)
    assert len(by_position) == 6 and {s for s, _ in by_position} == {0, 1}
    rel = opened.scans[0].relative_position
    chosen = [r for s, r in by_position if s == 0]
    assert all(abs(rel[r] - 0.5) <= np.sort(np.abs(rel - 0.5))[2] + 1e-9 for r in chosen)
    import torch

    query_global = torch.from_numpy(np.zeros(tiny_loaded.model.backbone.embed_dim, dtype=np.float32))
    query_global[0] = 1.0
    assert len(opened.match(0.5, query_global, strategy="retrieval", per_scan=2)) == 4
    memory = tiny_loaded.memory_from_rows(opened.rows(by_position))
    assert memory.layers[0].shape == (1, 6 * 16, tiny_loaded.model.backbone.embed_dim) and memory.shots == 6  # slices pooled


def test_score_study_writes_outputs_in_source_geometry(bank, demo_data, tiny_options, tmp_path):
    import highdicom as hd

    from adaptclip_med.volume.pipeline import make_scorer, score_study

    scorer = make_scorer(tiny_options.with_(bank=str(bank)))
    assert scorer.shots == 2 and scorer.threshold_source.startswith("calibrated")
    out = score_study(demo_data.study_dir, tmp_path / "study", scorer, parametric_map=True)
    truth = nib.load(str(demo_data.ground_truth_nifti))
    for key in ("probability_nifti", "mask_nifti"):
        image = nib.load(str(out.files[key]))
        assert image.shape == truth.shape
        np.testing.assert_allclose(image.affine, truth.affine, atol=1e-4)
    rows = list(csv.DictReader(open(out.files["slices_csv"])))
    assert [int(r["array_index"]) for r in rows] == list(range(8)) and [int(r["slice"]) for r in rows] == list(range(1, 9))
    report = json.loads(out.files["study_json"].read_text())
    assert report["score"] == pytest.approx(out.score) and report["slices"]["total"] == 8
    assert report["scoring"]["reference_bank"]["name"] == "head" and report["threshold_source"].startswith("calibrated")
    assert "PHANTOM" not in out.files["study_json"].read_text()
    seg = hd.seg.segread(str(out.files["dicom_seg"]))
    sources = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in demo_data.study_dir.rglob("*.dcm")}
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == sources
    assert out.files["parametric_map"].is_file() and out.files["score_plot"].is_file()
    assert any(k.startswith("overlay_top") for k in out.files)


def test_background_slices_are_skipped_and_reported(tmp_path, tiny_loaded, tiny_options):
    from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
    from adaptclip_med.volume.pipeline import make_scorer, score_study

    hu, _ = make_head_ct_phantom(5, (6, 64, 64), lesions=0)
    hu[:2] = -1000.0  # air only
    write_dicom_series(hu, tmp_path / "series")
    out = score_study(tmp_path / "series", tmp_path / "out", make_scorer(tiny_options, tiny_loaded))
    rows = list(csv.DictReader(open(out.files["slices_csv"])))
    skipped = [r for r in rows if r["skipped"] in ("True", "true", "1")]
    assert len(skipped) == 2 and all("background" in r["skip_reason"] for r in skipped)
    assert all(r["score"] == "" for r in skipped)
    probability = np.asarray(nib.load(str(out.files["probability_nifti"])).dataobj)
    assert probability.shape[-1] == 6 or probability.shape[0] == 6


def test_shots_larger_than_bank_is_refused(bank, tiny_options):
    from adaptclip_med.volume.pipeline import make_scorer

    with pytest.raises(AdaptClipError, match="2 scans"):
        make_scorer(tiny_options.with_(bank=str(bank), shots=5))


def test_list_rename_delete(bank, tmp_path, demo_data, tiny_loaded, tiny_options):
    from adaptclip_med.volume.reference_bank import build_reference_bank

    root = tmp_path / "banks"
    build_reference_bank("a", demo_data.reference_dirs[:1], tiny_loaded, tiny_options.preprocessing(), root)
    assert [b["name"] for b in list_banks(root)] == ["a"] and not list_banks(root)[0]["calibrated"]
    rename_bank(root, "a", "b")
    assert [b["name"] for b in list_banks(root)] == ["b"]
    with pytest.raises(InputError):
        rename_bank(root, "missing", "c")
    delete_bank(root, "b")
    assert list_banks(root) == []


def test_cli_build_and_score(tmp_path, demo_data):
    from typer.testing import CliRunner

    from adaptclip_med.cli.main import app

    runner = CliRunner()
    tiny = ["--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0", "--adapters", "untrained",
            "--image-size", "56", "--offline"]
    result = runner.invoke(app, ["references", "build", "cli-bank", str(demo_data.reference_dirs[0]), str(demo_data.reference_dirs[1]),
                                 "--window", "brain", "--banks-root", str(tmp_path / "banks"), *tiny])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["score", str(demo_data.study_dir), "--references", "cli-bank", "--banks-root", str(tmp_path / "banks"),
                                 "--out", str(tmp_path / "out"), *tiny])
    assert result.exit_code == 0, result.output
    assert "2-shot" in result.output and (tmp_path / "out" / "study.json").is_file()
    result = runner.invoke(app, ["score", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2"), *tiny])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
