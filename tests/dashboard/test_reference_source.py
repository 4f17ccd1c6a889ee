"""The linked reference viewer shows the matched slice of the normal SOURCE series, or says why not.

A bank records each normal scan's path and voxel fingerprint in ``sources.json``; the review reads
the series again when it is under the allowed roots and unchanged, and otherwise falls back to the
bank's 128-px thumbnails with a reason that names no path.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from adaptclip_med.io.loader import load_study
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.reference_source import open_reference_series
from adaptclip_med.review.studies import score_for_review
from adaptclip_med.review.viewer_data import reference_payload, reference_volume
from adaptclip_med.volume.pipeline import make_scorer, model_for
from adaptclip_med.volume.bank_builder import build_reference_bank, voxel_fingerprint
from adaptclip_med.volume.bank.format import SOURCES_JSON
from adaptclip_med.volume.bank.reader import ReferenceBank


@pytest.fixture(scope="module")
def scored(tmp_path_factory, demo_data, tiny_options):
    """References copied to their own root, a bank built from them, the lesion study scored with it."""
    base = tmp_path_factory.mktemp("refsource")
    refs = base / "references"
    copies = [shutil.copytree(d, refs / d.name) for d in demo_data.reference_dirs]
    bank_path = build_reference_bank("ct-head", copies, model_for(tiny_options), tiny_options.preprocessing(),
                                     base / "banks", batch_size=8, calibrate=False)
    volume, _ = load_study(demo_data.study_dir)
    scorer = make_scorer(tiny_options.with_references(bank=str(bank_path)))
    study = score_for_review(volume, "study-1", base / "out", scorer)
    return base, refs, copies, bank_path, study


def test_the_bank_records_source_path_and_fingerprint(scored):
    _, _, copies, bank_path, _ = scored
    bank = ReferenceBank.open(bank_path)
    record = bank.source_record(1)
    assert record["file"] == "scan_01.safetensors" and record["path"] == str(copies[1].resolve())
    volume, _ = load_study(copies[1])
    assert record["fingerprint"] == voxel_fingerprint(volume.array) and record["num_slices"] == volume.array.shape[0]
    assert "path" not in json.dumps(json.loads((bank_path / "bank.json").read_text())["scans"])  # bank.json stays path-free


def test_the_viewer_gets_the_source_slice_the_model_compared_with(scored):
    _, refs, copies, bank_path, study = scored
    bank = ReferenceBank.open(bank_path)
    series = open_reference_series(bank, 0, AllowedRoots([refs]))
    assert series.volume is not None and series.reason == ""
    ref = reference_volume(bank, 0, study, "ct-head", series)
    source, _ = load_study(copies[0])
    assert ref.source and ref.array.shape == source.array.shape  # full resolution, not 128-px thumbnails
    np.testing.assert_allclose(ref.array, source.array.astype(np.float32))  # in the series' own units (HU)
    for z, pairs in study.matched.items():  # the shown slice is one scoring compared with (a source slice index)
        recorded = [src for scan, src in pairs if scan == 0]
        if recorded:
            assert ref.recorded[z] and ref.slices[z] in recorded
    assert any(ref.recorded)
    payload = reference_payload(ref, 0, "ct-head")
    assert payload["source"] is True and payload["shape"] == list(source.array.shape)
    assert payload["label"].endswith("scan 1\nsource series (full resolution)")


def test_outside_the_roots_or_without_sources_it_says_why_and_shows_thumbnails(scored, tmp_path):
    base, refs, _, bank_path, study = scored
    bank = ReferenceBank.open(bank_path)
    outside = open_reference_series(bank, 0, AllowedRoots([tmp_path]))
    assert outside.volume is None and outside.reason == "its source series is not under the data roots"
    ref = reference_volume(bank, 0, study, "ct-head", outside)
    assert not ref.source and ref.array.shape[1:] == (128, 128)
    assert ref.label.endswith("bank thumbnails (128 px):\nits source series is not under the data roots")
    assert str(base) not in ref.label and "references" not in ref.label  # no path on screen

    shared = tmp_path / "shared-bank"
    shutil.copytree(bank_path, shared)
    (shared / SOURCES_JSON).unlink()  # how a bank is shared without local paths
    reason = open_reference_series(ReferenceBank.open(shared), 0, AllowedRoots([refs])).reason
    assert reason.startswith("the bank records no source series")


def test_a_changed_or_moved_series_is_not_shown_as_the_reference(scored, tmp_path):
    _, refs, copies, bank_path, _ = scored
    moved = tmp_path / "bank"
    shutil.copytree(bank_path, moved)
    sources = json.loads((moved / SOURCES_JSON).read_text())
    sources["scans"][0]["fingerprint"] = "0" * 24  # a different series now lives at that path
    sources["scans"][1]["path"] = str(refs / "gone")
    (moved / SOURCES_JSON).write_text(json.dumps(sources))
    bank = ReferenceBank.open(moved)
    assert open_reference_series(bank, 0, AllowedRoots([refs])).reason == "its source series changed since the bank was built"
    assert open_reference_series(bank, 1, AllowedRoots([refs])).reason == "its source series is no longer at the recorded location"


def test_the_reference_slice_shown_is_at_the_study_slice_level_on_every_slice(scored, demo_data):
    """Study and references share their slice positions (the phantom's geometry): on EVERY slice,
    including the top-scoring ones the model used, the reference shown lies at the same z in mm,
    not at the first (lowest) slice of the matched set."""
    from adaptclip_med.review.references import matched_slice
    from adaptclip_med.review.viewer_data import canonical_affine

    _, refs, _, bank_path, study = scored
    bank = ReferenceBank.open(bank_path)
    series = open_reference_series(bank, 0, AllowedRoots([refs]))
    ref = reference_volume(bank, 0, study, "ct-head", series)
    study_affine, ref_affine = canonical_affine(study), np.asarray(ref.affine)
    assert len(study.matched) == study.depth and all(len(p) > 1 for p in study.matched.values())  # a set, not one slice
    for z in range(study.depth):
        assert ref.recorded[z]
        study_mm = (study_affine @ [z, 0, 0, 1])[:3]
        ref_mm = (ref_affine @ [ref.slices[z], 0, 0, 1])[:3]
        np.testing.assert_allclose(ref_mm, study_mm, atol=1e-3, err_msg=f"slice {z + 1}")
        thumb = matched_slice(bank, study, z)  # the exported report's reference thumbnail: the same slice
        assert thumb.recorded and thumb.source_slice == ref.slices[z]
    for z in study.top_slices:  # the slices the model used: the same level too, and among the matched set
        assert ref.slices[z] == z and ref.slices[z] in [src for s, src in study.matched[z] if s == 0]
