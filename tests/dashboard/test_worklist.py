"""Worklist from batch results: ranked by score, review status from the store, paths checked."""

from __future__ import annotations

import json

from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.worklist import build_worklist, discover_results


def _study(folder, score, key=None):
    folder.mkdir(parents=True)
    report = {"score": score, "top_slices": [{"index": 3, "score": score}], "source": {"modality": "CT"}}
    if key:
        report["study_key"] = key
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
    assert [e.study_key for e in ranked] == ["eee", "bbb", "ddd", "aaa", "ccc"]
    by_key = {e.study_key: e for e in ranked}
    assert by_key["bbb"].status == "confirmed" and by_key["aaa"].status == "unread"
    assert by_key["aaa"].top_slice == 5 and by_key["aaa"].series == "series-a"
    assert by_key["ccc"].scoring_status == "failed" and by_key["ccc"].score is None
    # its output folder lies outside the allowed roots: listed, but not openable
    assert by_key["eee"].output_dir is None and by_key["eee"].scoring_status == "results not readable"
    assert by_key["ddd"].output_dir == (results / "extra" / "run1").resolve() and by_key["ddd"].scoring_status == "done"
