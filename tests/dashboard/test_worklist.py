"""Worklist from batch results: ranked by score, review status from the store, paths checked."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.worklist import NOT_SCORED, build_worklist, discover_results, with_candidates
from adaptclip_med.review.discovery import Candidate


def _study(folder, score, key=None, complete=True):
    folder.mkdir(parents=True)
    report = {"score": score, "top_slices": [{"index": 3, "score": score}], "source": {"modality": "CT", "shape_zyx": [4, 8, 8]},
              "scoring": {"method": "adaptclip"}}
    if key:
        report["study_key"] = key
    if complete:
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), str(folder / "anomaly_probability.nii.gz"))
        (folder / "slices.csv").write_text("index,score,skipped\n0,0.1,False\n")
    (folder / "study.json").write_text(json.dumps(report))
    return folder


def test_batch_worklist_csv_plus_loose_study_folders_ranked_by_score(tmp_path):
    results = tmp_path / "results"
    _study(results / "studies" / "aaa", 0.2)
    _study(results / "studies" / "bbb", 0.9)
    (results / "studies" / "ccc").mkdir()  # unfinished: no study.json
    _study(results / "extra" / "run1", 0.5, key="ddd")
    outside = _study(tmp_path / "elsewhere" / "eee", 0.99)
    (results / "worklist.csv").write_text(
        "study_key,score,top_slice,series,status,output,notes\n"
        "bbb,0.9,3,series-b,done,studies/bbb,\n"
        "aaa,0.2,5,series-a,done,studies/aaa,\n"
        "ccc,,,,failed,studies/ccc,no eligible series\n"
        f"eee,0.99,1,series-e,done,{outside},\n")
    entries = discover_results(results, AllowedRoots([results]))
    ranked = build_worklist(entries, {"bbb": "confirmed"})
    # readable results by score first; then what cannot be opened (eee's folder is outside the roots)
    assert [e.study_key for e in ranked] == ["bbb", "ddd", "aaa", "eee", "ccc"]
    by_key = {e.study_key: e for e in ranked}
    assert by_key["bbb"].status == "confirmed" and by_key["aaa"].status == "unread"
    assert by_key["aaa"].top_slice == 5 and by_key["aaa"].series == "series-a"
    assert by_key["ccc"].scoring_status == "failed" and by_key["ccc"].score is None
    # its output folder lies outside the allowed roots: listed, but not openable
    assert by_key["eee"].output_dir is None and by_key["eee"].scoring_status == "results not readable"
    assert by_key["ddd"].output_dir == (results / "extra" / "run1").resolve() and by_key["ddd"].scoring_status == "done"


def test_broken_results_are_flagged_and_never_ranked_first(tmp_path):
    results = tmp_path / "results"
    _study(results / "good", 0.3, key="good")
    broken = _study(results / "broken", 0.99, key="broken")
    (broken / "anomaly_probability.nii.gz").write_bytes(b"garbage")
    _study(results / "half", 0.95, key="half", complete=False)
    ranked = build_worklist(discover_results(results, AllowedRoots([results])), {})
    assert [e.study_key for e in ranked] == ["good", "broken", "half"]
    by_key = {e.study_key: e for e in ranked}
    assert by_key["good"].openable and by_key["good"].slices == 4 and by_key["good"].method == "adaptclip"
    assert not by_key["broken"].openable and "damaged" in by_key["broken"].problem
    assert not by_key["half"].openable and "incomplete" in by_key["half"].problem


def test_unscored_series_are_listed_with_their_description(tmp_path):
    entries = build_worklist(discover_results(_study(tmp_path / "r" / "s", 0.4, key="k1").parent, AllowedRoots([tmp_path])), {})
    candidates = [Candidate("ser1", "k1", "dicom", "CT", "HEAD", 4, "a"), Candidate("ser2", "k2", "dicom", "CT", "NEW STUDY", 30, "b")]
    listed = build_worklist(with_candidates(entries, candidates), {})
    assert [(e.study_key, e.description, e.scoring_status) for e in listed] == [("k1", "HEAD", "done"), ("k2", "NEW STUDY", NOT_SCORED)]
    assert listed[1].slices == 30 and not listed[1].openable


def _comparison(folder, scores: dict[str, float]):
    """The layout of ``score --method a,b``: one complete study folder per method + methods.json."""
    for method, score in scores.items():
        _study(folder / method, score)
        report = json.loads((folder / method / "study.json").read_text())
        report["scoring"]["method"] = method
        (folder / method / "study.json").write_text(json.dumps(report))
    (folder / "methods.json").write_text(json.dumps({"methods": [{"method": m, "folder": m, "score": s} for m, s in scores.items()]}))
    return folder


def test_a_two_method_comparison_is_one_study_with_both_maps(tmp_path):
    from adaptclip_med.review.studies import available_maps, comparison_folders

    results = tmp_path / "results"
    study = _comparison(results / "study-x", {"adaptclip": 0.4, "winclip": 0.7})
    _comparison(results / "study-y", {"adaptclip": 0.2, "winclip": 0.1})
    entries = build_worklist(discover_results(results, AllowedRoots([results])), {})
    # keyed by the comparison folder, not by the method folders ("adaptclip", "winclip")
    assert sorted(e.study_key for e in entries) == ["study-x", "study-y"]
    entry = next(e for e in entries if e.study_key == "study-x")
    assert entry.method == "adaptclip, winclip" and entry.openable
    assert comparison_folders(entry.output_dir) == [study / "adaptclip", study / "winclip"]
    maps = available_maps("study-x", entry.output_dir)
    assert maps == {"adaptclip": study / "adaptclip", "winclip": study / "winclip"}
    assert available_maps("study-x", study / "winclip") == {"winclip": study / "winclip", "adaptclip": study / "adaptclip"}


def test_method_folders_of_another_study_are_not_offered(tmp_path):
    from adaptclip_med.review.studies import available_maps

    results = tmp_path / "results"
    _study(results / "studies" / "aaa", 0.3, key="aaa")
    _study(results / "studies" / "bbb", 0.6, key="bbb")  # a sibling folder of a different study
    assert list(available_maps("aaa", results / "studies" / "aaa")) == ["adaptclip"]
