"""Hostile or broken files in an input tree: each is named with its one-line reason, nothing hangs,
nothing allocates what a header merely claims, and the rest of the input is still read.

Each case was reproduced on main first: a symlink loop ended in a traceback, a FIFO / a link to
/dev/zero / an encapsulated file claiming 10^8 frames hung the scan, zero direction cosines or
pixel spacing gave a nibabel traceback, and a 'NaN' RescaleSlope was read as 1.0.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pydicom
import pytest
from io_helpers import assert_safe_message, identifiers_of
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_scan import scan_dicom
from adaptclip_med.io.loader import load_study
from adaptclip_med.io.file_kinds import open_regular, regular_file_problem, NotRegularFileError


@pytest.fixture(autouse=True)
def _no_hang():
    """A regression would hang (FIFO, /dev/zero): fail the test instead of the whole suite."""
    def _timeout(*_):
        raise TimeoutError("the scan hung")
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _edit(paths, **values):
    for path in paths:
        ds = pydicom.dcmread(path)
        for key, value in values.items():
            setattr(ds, key, value)
        ds.save_as(path)


def _encapsulated(path: Path, frames: int, rows: int | None = None, columns: int | None = None) -> None:
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = frames
    if rows is not None:
        ds.Rows, ds.Columns = rows, columns
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"] * 4)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path)


def _reasons(folder: Path) -> dict[str, str]:
    series = scan_dicom(folder)
    return {skip.label: skip.reason for info in series for skip in info.skipped}


def test_special_files_are_named_not_opened(write_series):
    folder = write_series()
    os.symlink("loop", folder / "loop")
    os.mkfifo(folder / "pipe")
    os.symlink("/dev/zero", folder / "zero")
    os.symlink(folder / "gone", folder / "dangling")
    reasons = _reasons(folder)
    assert reasons["loop"] == "symbolic link loop"
    assert reasons["pipe"] == "not a regular file (a named pipe (FIFO))"
    assert reasons["zero"] == "not a regular file (a character device)"  # named where it lies, not /dev/zero
    assert reasons["dangling"].startswith("no such file")
    volume, _ = load_study(folder)  # the series itself still loads
    assert volume.meta["num_slices"] == 8


@pytest.mark.parametrize("name", ["pipe.nii", "pipe.png", "pipe.dcm"])
def test_a_special_file_given_directly_is_one_line(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(InputError) as caught:
        load_study(tmp_path / name)
    assert str(caught.value) == f"{tmp_path / name}: not a regular file (a named pipe (FIFO))"


def test_open_regular_checks_the_opened_descriptor(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotRegularFileError):
        open_regular(tmp_path / "pipe")  # returns at once: O_NONBLOCK, no writer needed
    (tmp_path / "file").write_bytes(b"abc")
    with open_regular(tmp_path / "file") as handle:
        assert handle.read() == b"abc"
    assert regular_file_problem(tmp_path / "file") is None


@pytest.mark.parametrize("claim, expected", [
    ("native 1e8 frames", "the header claims 100000000x48x48 pixels (858 GiB decoded), more than the 4 GiB limit"),
    ("encapsulated 1e8 frames", "the header claims 100000000x48x48 pixels (858 GiB decoded)"),
    ("30000x65535x65535", "the header claims 30000x65535x65535 pixels (469 TiB decoded)"),
    ("encapsulated 5000 frames", "the header claims 5000 frames but the file"),
])
def test_a_size_the_file_cannot_hold_is_refused_before_decoding(write_series, claim, expected):
    folder = write_series()
    target = sorted(folder.glob("*.dcm"))[4]  # a middle slice: the gap it leaves is noticed
    if claim == "native 1e8 frames":
        _edit([target], NumberOfFrames=10**8)
    elif claim == "encapsulated 1e8 frames":
        _encapsulated(target, 10**8)
    elif claim == "encapsulated 5000 frames":
        _encapsulated(target, 5000)
    else:
        _encapsulated(target, 30000, 65535, 65535)
    assert target.stat().st_size < 10_000
    reasons = _reasons(folder)
    assert reasons[target.name].startswith(expected), reasons
    with pytest.raises(InputError) as caught:  # the gap it leaves names it as the cause
        load_study(folder)
    assert target.name in str(caught.value) and "not uniform" not in str(caught.value)


@pytest.mark.parametrize("values, expected", [
    (dict(ImageOrientationPatient=[0, 0, 0, 0, 0, 0]), "ImageOrientationPatient 0\\0\\0\\0\\0\\0 is not two perpendicular"),
    (dict(PixelSpacing=[0, 0]), "PixelSpacing 0\\0 is not positive"),
    (dict(RescaleSlope="NaN"), "RescaleSlope 'NaN' is not a finite number"),
    (dict(RescaleIntercept="inf"), "RescaleIntercept 'inf' is not a finite number"),
])
@pytest.mark.parametrize("slices", ["one", "all"])
def test_unusable_geometry_or_rescale_is_one_line_never_a_default(write_series, values, expected, slices):
    folder = write_series()
    files = sorted(folder.glob("*.dcm"))
    with pytest.warns(UserWarning) if "Rescale" in next(iter(values)) else _nothing():
        _edit(files[4:5] if slices == "one" else files, **values)
    with pytest.raises(InputError) as caught:
        load_study(folder)
    message = str(caught.value)
    assert expected in message, message
    assert_safe_message(message, identifiers_of(folder))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


def test_a_slice_with_an_unreadable_header_is_reported_as_unreadable(write_series):
    folder = write_series()
    middle = sorted(folder.glob("*.dcm"))[4]
    middle.write_bytes(b"DICM" + os.urandom(600))
    with pytest.raises(InputError) as caught:
        load_study(folder)
    message = str(caught.value)
    assert "not uniform" not in message
    assert f"{middle.name}: " in message and "could not be read" in message, message


@pytest.mark.parametrize("make", ["fifo", "zero orientation"])
def test_score_on_a_hostile_input_is_one_error_line_and_exit_code_2(write_series, tmp_path, make, monkeypatch):
    from typer.testing import CliRunner

    from adaptclip_med.cli.main import app

    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    if make == "fifo":
        target = tmp_path / "pipe.dcm"
        os.mkfifo(target)
    else:
        target = write_series()
        _edit(sorted(target.glob("*.dcm")), ImageOrientationPatient=[0] * 6)
    args = ["score", str(target), "--out", str(tmp_path / "out"), "--zero-shot", "--window", "brain",
            "--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0", "--adapters", "untrained",
            "--image-size", "56", "--offline", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert ("not a regular file" if make == "fifo" else "ImageOrientationPatient") in errors[0]
