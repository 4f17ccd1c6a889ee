"""Study keys read from results files never escape the output folder (worklist.csv, study.json, export)."""

from __future__ import annotations

import json

import pytest

from adaptclip_med.errors import PathNotAllowedError
from adaptclip_med.review.export import export_folder
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.studies import dashboard_output_dir
from adaptclip_med.review.worklist import discover_results
from adaptclip_med.utils.keys import check_key, is_safe_key, key_path

EVIL = ["../../../../tmp/x", "..", ".", "a/b", "/tmp/x", "", "a\x00b", "..hidden", "x" * 200, "a\\..\\b"]


@pytest.mark.parametrize("key", EVIL)
def test_keys_that_are_not_plain_names_are_rejected(tmp_path, key):
    assert not is_safe_key(key)
    with pytest.raises(PathNotAllowedError) as caught:
        export_folder(tmp_path / "out", key)
    assert len(key) < 5 or key not in str(caught.value)
    with pytest.raises(PathNotAllowedError):
        dashboard_output_dir(tmp_path / "out", key)


def test_plain_keys_pass_and_symlinks_out_are_refused(tmp_path):
    assert check_key("0123456789abcdef") == "0123456789abcdef" and is_safe_key("study_01.v2")
    assert export_folder(tmp_path, "abc") == tmp_path / "reviewed" / "abc"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PathNotAllowedError, match="outside"):
        key_path(tmp_path / "out", "link")


def test_worklist_rows_and_study_json_with_traversal_keys_are_dropped(tmp_path):
    results = tmp_path / "results"
    good = results / "studies" / "good"
    good.mkdir(parents=True)
    (good / "study.json").write_text(json.dumps({"score": 0.5, "top_slices": []}))
    bad = results / "studies" / "bad"
    bad.mkdir(parents=True)
    (bad / "study.json").write_text(json.dumps({"score": 0.7, "study_key": "../../../../tmp/x", "top_slices": []}))
    (results / "worklist.csv").write_text("study_key,score,top_slice,series,status,output,notes\n"
                                          "../../../../tmp/y,0.9,1,s,done,studies/good,\n")
    keys = {e.study_key for e in discover_results(results, AllowedRoots([results]))}
    assert keys == {"good"}
