"""A batch over a tree holding hostile or broken files: every one gets its one-line reason in
errors.csv, nothing hangs or aborts, and the good study is still scored (README exit codes hold:
4 = some studies failed).  On main this run ended in a traceback at the symlink loop."""

from __future__ import annotations

import csv
import os
import signal

import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid
from typer.testing import CliRunner

from adaptclip_med.batch.file_index import read_file_index
from tests.support.dicom_studies import ct_series, good_study, tiny_cli_args
from test_cli import app


def _timeout(*_):
    raise TimeoutError("the batch hung")


def test_hostile_files_each_get_a_reason_and_the_good_study_is_scored(tmp_path):
    src = tmp_path / "src"
    good = good_study(src, "good", seed=1)
    junk = src / "junk"
    junk.mkdir()
    os.symlink("loop", junk / "loop")
    os.mkfifo(junk / "pipe")
    os.symlink("/dev/zero", junk / "zero")
    frames = ct_series(src / "frames", generate_uid(), slices=1)[0]
    ds = pydicom.dcmread(frames)
    ds.NumberOfFrames, ds.PixelData = 10**8, encapsulate([b"\xff\xd8\xff\xd9"] * 4)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(frames)
    tilted = ct_series(src / "tilted", generate_uid(), slices=3)
    for path in tilted:
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [0] * 6
        ds.save_as(path)
    gap = ct_series(src / "gap", generate_uid(), slices=5)
    gap[2].write_bytes(b"DICM" + bytes(range(256)) * 3)  # a slice whose header cannot be parsed
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(300)
    try:
        result = CliRunner().invoke(app(), ["batch", str(src), "--out", str(tmp_path / "out"), *tiny_cli_args()])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 4, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    with open(tmp_path / "out" / "errors.csv", newline="") as handle:
        rows = {row["study_key"]: row["reason"] for row in csv.DictReader(handle)}
    reasons = list(rows.values())
    assert all("\n" not in r for r in reasons)
    index = read_file_index(tmp_path / "out")  # files are named by key; the owner-only index has the paths
    by_path = {index.get(key): reason for key, reason in rows.items() if key.startswith("file-")}
    assert by_path["junk/loop"] == "symbolic link loop"
    assert by_path["junk/pipe"] == "not a regular file (a named pipe (FIFO))"
    assert by_path["junk/zero"] == "not a regular file (a character device)"
    assert by_path["gap/img_0003.dcm"] == "not a DICOM file"
    text = " | ".join(reasons)
    for expected in ("the header claims 100000000x40x40 pixels", "ImageOrientationPatient 0\\0\\0\\0\\0\\0"):
        assert expected in text, text
    gap_reason = next(r for r in reasons if "slices are missing" in r)
    gap_key = next(key for key, path in index.items() if path == "gap/img_0003.dcm")
    assert "not uniform" not in gap_reason and f"{gap_key}: not a DICOM file" in gap_reason
    with open(tmp_path / "out" / "worklist.csv", newline="") as handle:
        done = [row for row in csv.DictReader(handle) if row["status"] == "done"]
    assert [row["study_key"] for row in done] == [good.key]
