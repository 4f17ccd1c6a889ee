"""The dashboard shows the comparability guard's verdict (issue 24): the worklist lists a study that
is not comparable with its bank with the reason and never ranks it; the viewer says so in red
(partly comparable: amber).  Results are real outputs of the tiny model, with the verdict of one
copy set to "not comparable" the way the scorer writes it (tests/volume/test_comparability.py
shows the scorer producing it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from adaptclip_med.volume.pipeline import make_scorer
from adaptclip_med.volume.study_run import score_study

APP = Path(__file__).resolve().parents[2] / "adaptclip_med" / "dashboard" / "entry.py"
NOT_COMPARABLE = "not comparable: 1 of 1 body slices out of the reference distribution"


def _mark(folder: Path, status: str, reasons: list[str], score: float | None) -> None:
    report = json.loads((folder / "study.json").read_text())
    report["comparability"] = {**(report.get("comparability") or {}), "status": status, "reasons": reasons}
    report["score"] = score
    (folder / "study.json").write_text(json.dumps(report))


def test_worklist_and_viewer_show_the_verdict(dashboard_config, demo_data, tmp_path, tiny_options):
    results = tmp_path / "batch"
    outputs = score_study(demo_data.study_dir, results / "s1", make_scorer(tiny_options.with_references(zero_shot=True)))
    shutil.copytree(results / "s1", results / "s2")
    shutil.copytree(results / "s1", results / "s3")
    _mark(results / "s2", "not comparable", [NOT_COMPARABLE.split(": ", 1)[1]], None)
    _mark(results / "s3", "partly comparable", ["3 of 10 body slices outside the bank's body-axis coverage"], 0.01)
    (results / "worklist.csv").write_text(
        "study_key,score,top_slice,series,status,comparability,output,notes\n"
        f"s1,{outputs.score},{outputs.top_slices[0]},CT,done,comparable,s1,\n"
        "s2,,0,CT,done,\"" + NOT_COMPARABLE + "\",s2,\n"
        f"s3,0.01,0,CT,done,partly comparable: 3 of 10 body slices outside the bank's body-axis coverage,s3,\n")
    dashboard_config(results=(results,))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception
    table = at.dataframe[0].value
    rows = {key: i for i, key in enumerate(table["study"].tolist())}
    assert table["comparability"][rows["s2"]] == NOT_COMPARABLE
    assert table["rank"][rows["s2"]] == "—" and table["rank"][rows["s1"]] in ("1", "2")
    assert rows["s2"] > max(rows["s1"], rows["s3"])  # below every ranked study
    picker = at.selectbox(key="wl_pick")
    assert "(not comparable)" in picker.format_func("s2") and "(partly comparable)" in picker.format_func("s3")

    viewer = _open(at, "s2")
    assert any(NOT_COMPARABLE in e.value and "not a finding" in e.value for e in viewer.error)
    assert any("no study score" in c.value for c in viewer.caption)
    partly = _open(AppTest.from_file(str(APP), default_timeout=180).run(), "s3")
    assert any(w.value.startswith("partly comparable: 3 of 10") for w in partly.warning)


def _open(at: AppTest, key: str) -> AppTest:
    at.selectbox(key="wl_pick").set_value(key).run()
    at.button(key="wl_open").click().run()
    assert not at.exception
    return at
