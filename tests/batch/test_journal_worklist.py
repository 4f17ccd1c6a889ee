from __future__ import annotations

import csv
import time

import pytest

from adaptclip_med.batch.discovery import FileError
from adaptclip_med.batch.journal import DONE, FAILED, Journal, StudyRecord, read_journals
from adaptclip_med.batch.worklist import write_errors, write_worklist
from adaptclip_med.errors import AdaptClipError


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_journal_keeps_one_record_per_study_and_merges_ranks_newest_first(tmp_path):
    with Journal(tmp_path, rank=0) as journal:
        journal.record(StudyRecord("a", FAILED, reason="PACS away"))
        journal.record(StudyRecord("b", DONE, score=0.4, output="b"))
        journal.record(StudyRecord("a", DONE, score=0.9, output="a"))  # redone after a failure
    time.sleep(0.01)
    with Journal(tmp_path, rank=1) as journal:  # e.g. a later run with two ranks redid b
        journal.record(StudyRecord("b", DONE, score=0.5, output="b"))
    merged = read_journals(tmp_path)
    assert sorted(merged) == ["a", "b"]
    assert merged["a"].status == DONE and merged["a"].score == 0.9
    assert merged["b"].score == 0.5


def test_second_writer_on_the_same_rank_is_refused(tmp_path):
    with Journal(tmp_path, rank=0):
        with pytest.raises(AdaptClipError, match="another batch run"):
            with Journal(tmp_path, rank=0):
                pass
    with Journal(tmp_path, rank=0):  # released on exit
        pass


def test_worklist_sorted_by_score_with_failures_last_and_errors_only_failures(tmp_path):
    records = [StudyRecord("low", DONE, score=0.1, top_slice=3, series="CT #1", output="low"),
               StudyRecord("bad", FAILED, reason="no eligible series (...)"),
               StudyRecord("high", DONE, score=0.8, top_slice=7, series="CT #2", output="high", notes="1 file(s) skipped"),
               StudyRecord("todo", "pending")]
    write_worklist(tmp_path, records)
    write_errors(tmp_path, records, [FileError("file-1", "x.dcm: not a DICOM file")])
    worklist = rows(tmp_path / "worklist.csv")
    assert [r["study_key"] for r in worklist] == ["high", "low", "bad", "todo"]
    assert worklist[0] == {"study_key": "high", "score": "0.800000", "flag": "", "top_slice": "8", "series": "CT #2",
                           "status": "done", "comparability": "", "output": "high", "notes": "1 file(s) skipped"}
    assert rows(tmp_path / "errors.csv") == [{"study_key": "bad", "reason": "no eligible series (...)"},
                                            {"study_key": "file-1", "reason": "x.dcm: not a DICOM file"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["errors.csv", "worklist.csv"]  # no temp files left


def test_not_comparable_study_is_listed_with_its_reason_after_every_ranked_study(tmp_path):
    """A study not comparable with the bank has no study score (nan): it is never ranked above a
    real one, and the worklist says why (issue 24: a body CT ranked above the lesion study)."""
    records = [StudyRecord("lesion", DONE, score=0.14, top_slice=5, output="lesion", comparability="comparable"),
               StudyRecord("body-ct", DONE, score=float("nan"), top_slice=0, output="body-ct",
                           comparability="not comparable: 1 of 1 body slices out of the reference distribution"),
               StudyRecord("shifted", DONE, score=0.05, top_slice=9, output="shifted",
                           comparability="partly comparable: 5 of 16 body slices outside the bank's body-axis coverage"),
               StudyRecord("bad", FAILED, reason="the study is MR but reference bank 'head' holds CT scans: not comparable")]
    write_worklist(tmp_path, records)
    worklist = rows(tmp_path / "worklist.csv")
    assert [r["study_key"] for r in worklist] == ["lesion", "shifted", "body-ct", "bad"]
    assert worklist[2]["score"] == "" and worklist[2]["comparability"].startswith("not comparable: 1 of 1")
    assert worklist[1]["comparability"].startswith("partly comparable")


def test_journal_of_an_earlier_version_gains_the_comparability_column(tmp_path):
    """Resuming a batch whose journal predates the guard works: the column is added on open."""
    import sqlite3

    from adaptclip_med.batch.journal import journal_path

    path = journal_path(tmp_path, 0)
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE studies (key TEXT PRIMARY KEY, status TEXT NOT NULL, score REAL, top_slice INTEGER, "
               "series TEXT NOT NULL, reason TEXT NOT NULL, output TEXT NOT NULL, notes TEXT NOT NULL, "
               "seconds REAL NOT NULL, updated REAL NOT NULL)")
    db.execute("INSERT INTO studies VALUES ('old', 'done', 0.3, 1, '', '', 'old', '', 1.0, 1.0)")
    db.commit()
    db.close()
    assert read_journals(tmp_path)["old"].comparability == ""  # readable before any writer opened it
    with Journal(tmp_path, rank=0) as journal:
        journal.record(StudyRecord("new", DONE, score=0.2, comparability="comparable"))
    merged = read_journals(tmp_path)
    assert merged["old"].score == 0.3 and merged["new"].comparability == "comparable"

