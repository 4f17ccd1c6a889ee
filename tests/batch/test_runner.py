"""End-to-end batch runs in-process on tiny synthetic trees (tiny random model, zero-shot)."""

from __future__ import annotations

import csv
import errno
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from adaptclip_med.batch import worker
from adaptclip_med.batch.discovery import FolderSource
from adaptclip_med.batch.journal import journal_path
from adaptclip_med.batch.runner import run_batch
from adaptclip_med.batch.worker import BatchOptions, DiskFullError

from tests.support.dicom_studies import good_study, identifiers, mixed_tree


def run(src: Path, out: Path, scoring, **options):
    return run_batch(FolderSource(src), scoring, BatchOptions(out_dir=out, **options))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def leftovers(out: Path) -> list[Path]:
    """Anything half-written: temp files of the atomic writers or staged study folders."""
    temp = [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    staged = [p for p in (out / ".batch").glob("staging-rank-*/*")]
    return temp + staged


def test_mixed_tree_scores_good_studies_and_records_every_problem(tmp_path, scoring, caplog):
    tree = mixed_tree(tmp_path / "src")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        summary = run(tree.root, out, scoring)
    assert (summary.studies, summary.scored, summary.failed, summary.file_errors) == (5, 3, 2, 1)

    worklist = rows(out / "worklist.csv")
    done = [r for r in worklist if r["status"] == "done"]
    assert {r["study_key"] for r in done} == {s.key for s in [*tree.good, tree.with_truncated_slice]}
    scores = [float(r["score"]) for r in done]
    assert scores == sorted(scores, reverse=True) and worklist[:3] == done  # ranked, failures at the bottom
    for row in done:
        report = json.loads((out / row["output"] / "study.json").read_text())
        assert report["batch"]["study_key"] == row["study_key"]
        assert abs(report["score"] - float(row["score"])) < 1e-6 and int(row["top_slice"]) == report["top_slices"][0]["slice"] == report["top_slices"][0]["index"] + 1
        assert row["series"] == "CT series #1 'AX HEAD': %d slices, axial, 3 mm [only eligible series]" % report["slices"]["total"]
        assert (out / row["output"] / "anomaly_seg.dcm").is_file()
    partial = next(r for r in done if r["study_key"] == tree.with_truncated_slice.key)
    assert partial["notes"] == "1 file(s) of the series skipped"
    skipped = json.loads((out / partial["output"] / "study.json").read_text())["batch"]["skipped_files"]
    assert [s["reason"] for s in skipped] == ["truncated file (pixel data incomplete)"]

    errors = {r["study_key"]: r["reason"] for r in rows(out / "errors.csv")}
    assert len(errors) == 3
    assert errors[tree.localizer_only.key].startswith("no eligible series (")
    assert "localizer/scout" in errors[tree.localizer_only.key] and "Basic Text SR" in errors[tree.localizer_only.key]
    assert "truncated file (pixel data incomplete)" in errors[tree.truncated_only.key]
    file_errors = [reason for key, reason in errors.items() if key.startswith("file-")]
    assert file_errors == ["not a DICOM file"]  # named by its pseudonymous key (errors.csv's first column)

    secrets = identifiers(*tree.good, tree.localizer_only, tree.truncated_only, tree.with_truncated_slice)
    texts = [(out / "worklist.csv").read_text(), (out / "errors.csv").read_text(), caplog.text,
             *(str(p.relative_to(out)) for p in out.rglob("*"))]
    for secret in secrets:
        assert not any(secret in text for text in texts), "identifier leaked"
    assert leftovers(out) == []


def test_resume_skips_finished_studies_and_redoes_unfinished_ones(tmp_path, scoring):
    studies = [good_study(tmp_path / "src", f"s{i}", seed=i) for i in range(3)]
    out = tmp_path / "out"
    first = run(tmp_path / "src", out, scoring)
    assert (first.scored, first.already_done) == (3, 0)
    before = rows(out / "worklist.csv")
    a, b, c = sorted(s.key for s in studies)
    # crash states: a's outputs lost their completion marker; b was published but never journaled;
    # a staged (half-written) folder of c lies around
    (out / a / "study.json").unlink()
    db = sqlite3.connect(journal_path(out, 0))
    with db:
        db.execute("DELETE FROM studies WHERE key = ?", (b,))
    db.close()
    junk = out / ".batch" / "staging-rank-000" / c
    junk.mkdir(parents=True)
    (junk / "anomaly_probability.nii.gz").write_bytes(b"half")
    second = run(tmp_path / "src", out, scoring)
    assert (second.scored, second.already_done, second.failed) == (2, 1, 0)
    after = rows(out / "worklist.csv")
    assert [r["study_key"] for r in after] == [r["study_key"] for r in before]  # same rows, no duplicates
    for old, new in zip(before, after):
        assert abs(float(old["score"]) - float(new["score"])) < 1e-6 and old["top_slice"] == new["top_slice"]
    assert leftovers(out) == []
    third = run(tmp_path / "src", out, scoring)
    assert (third.scored, third.already_done) == (0, 3)
    assert rows(out / "worklist.csv") == after


def test_unexpected_error_in_one_study_is_recorded_and_the_run_goes_on(tmp_path, scoring, monkeypatch):
    studies = [good_study(tmp_path / "src", f"s{i}", seed=i) for i in range(2)]
    victim = min(s.key for s in studies)
    real = worker.load_dicom_series

    def flaky(series, axis, label, **kwargs):
        if victim in label:
            raise ValueError("boom with /private/path")
        return real(series, axis=axis, label=label, **kwargs)

    monkeypatch.setattr(worker, "load_dicom_series", flaky)
    summary = run(tmp_path / "src", tmp_path / "out", scoring)
    assert (summary.scored, summary.failed) == (1, 1)
    errors = rows(tmp_path / "out" / "errors.csv")
    assert errors == [{"study_key": victim, "reason": "unexpected error while scoring (ValueError)"}]
    failed = next(r for r in rows(tmp_path / "out" / "worklist.csv") if r["status"] == "failed")
    assert failed["series"].startswith("CT series #1 'AX HEAD'")  # the series that was tried


def test_disk_full_stops_the_run_with_a_clear_error_and_nothing_partial(tmp_path, scoring, monkeypatch):
    studies = [good_study(tmp_path / "src", f"s{i}", seed=i) for i in range(2)]
    first_key, second_key = sorted(s.key for s in studies)
    out = tmp_path / "out"
    from adaptclip_med.utils import atomic

    real_fsync = atomic._fsync_file
    calls = {"study.json": 0}

    def full_disk(path):
        if path.name.endswith("study.json"):
            calls["study.json"] += 1
            if calls["study.json"] == 2:  # the second study's LAST file: every other output is staged
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(path)

    monkeypatch.setattr(atomic, "_fsync_file", full_disk)
    with pytest.raises(DiskFullError) as info:
        run(tmp_path / "src", out, scoring)
    message = str(info.value)
    assert "disk full" in message and second_key in message and "\n" not in message and "nothing partial" in message
    assert (out / first_key / "study.json").is_file()
    assert not (out / second_key).exists()
    assert leftovers(out) == []

    monkeypatch.setattr(atomic, "_fsync_file", real_fsync)  # space freed: resume
    summary = run(tmp_path / "src", out, scoring)
    assert (summary.scored, summary.already_done) == (1, 1)
    assert sorted(r["study_key"] for r in rows(out / "worklist.csv")) == [first_key, second_key]
