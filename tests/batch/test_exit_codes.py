"""``batch`` exit codes (0 all scored, 4 some failed, 2 nothing scored), unwritable output folders
in one line, and private scratch folders under the run's own folders."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from adaptclip_med.batch.runner import run_batch
from adaptclip_med.batch.worker import BatchOptions
from adaptclip_med.batch.discovery import FolderSource
from adaptclip_med.batch.staging import scratch_root
from tests.support.dicom_studies import good_study, mixed_tree, sr_document, tiny_cli_args, truncate, ct_series
from test_cli import app


def batch(*args: str):
    return CliRunner().invoke(app(), ["batch", *args, *tiny_cli_args()])


def test_exit_code_is_4_when_some_studies_failed_and_0_when_all_scored(tmp_path):
    tree = mixed_tree(tmp_path / "src")
    result = batch(str(tree.root), "--out", str(tmp_path / "out"))
    assert result.exit_code == 4, result.output + result.stderr
    good = tmp_path / "good"
    good_study(good, "a", seed=1)
    assert batch(str(good), "--out", str(tmp_path / "out_good")).exit_code == 0


def test_exit_code_is_2_when_nothing_was_scored(tmp_path):
    from pydicom.uid import generate_uid

    src = tmp_path / "src"
    uid = generate_uid()
    truncate(ct_series(src / "x", uid, slices=1)[0], 0.5)
    sr_document(src / "x" / "report.dcm", uid)
    result = batch(str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output + result.stderr


def test_unwritable_output_folder_is_one_line(tmp_path):
    good_study(tmp_path / "src", "a", seed=1)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = batch(str(tmp_path / "src"), "--out", str(blocker / "out"))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "not writable" in lines[0] and "Traceback" not in result.output + result.stderr


def test_journal_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    good_study(tmp_path / "src", "a", seed=1)

    def readonly(self, record):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr("adaptclip_med.batch.journal.Journal.record", readonly)
    result = batch(str(tmp_path / "src"), "--out", str(tmp_path / "out"))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "cannot write the batch results" in lines[0]


def test_scratch_lives_under_the_run_and_stale_scratch_is_removed(tmp_path, scoring, monkeypatch):
    good_study(tmp_path / "src", "a", seed=1)
    out = tmp_path / "out"
    stale = scratch_root(out, None, 0) / "adaptclip-study-killed"
    stale.mkdir(parents=True)
    (stale / "fetched.dcm").write_bytes(b"patient image")
    seen = []
    from adaptclip_med.batch import worker

    original = worker.StudyWorker._score

    def spy(self, task, staged, scratch, attempt):
        seen.append(scratch)
        return original(self, task, staged, scratch, attempt)

    monkeypatch.setattr(worker.StudyWorker, "_score", spy)
    summary = run_batch(FolderSource(tmp_path / "src"), scoring, BatchOptions(out_dir=out))
    assert summary.exit_code == 0
    assert seen and all(p.is_relative_to(out) for p in seen)
    assert not stale.exists() and not scratch_root(out, None, 0).exists()
    configured = tmp_path / "scratch"
    configured.mkdir()
    run_batch(FolderSource(tmp_path / "src"), scoring, BatchOptions(out_dir=tmp_path / "out2", scratch_dir=configured))
    assert seen[-1].is_relative_to(configured) and list(configured.iterdir()) == []
