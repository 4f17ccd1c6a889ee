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
    assert worklist[0] == {"study_key": "high", "score": "0.800000", "top_slice": "7", "series": "CT #2",
                           "status": "done", "output": "high", "notes": "1 file(s) skipped"}
    assert rows(tmp_path / "errors.csv") == [{"study_key": "bad", "reason": "no eligible series (...)"},
                                            {"study_key": "file-1", "reason": "x.dcm: not a DICOM file"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["errors.csv", "worklist.csv"]  # no temp files left
