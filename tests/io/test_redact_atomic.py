"""Redacted file labels and atomic writes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.utils import atomic
from adaptclip_med.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from adaptclip_med.utils.redact import describe_path, pseudonymous_key

UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"


def test_describe_path_hashes_uid_components_and_keeps_the_rest():
    label = describe_path(Path("/data/export") / UID / f"{UID}.5.dcm")
    assert UID not in label
    assert label.startswith("/data/export/uid-")
    assert label.endswith(".dcm")
    # stable: the same file always gets the same label, different UIDs differ
    assert label == describe_path(Path("/data/export") / UID / f"{UID}.5.dcm")
    assert describe_path(f"/x/{UID}.6.dcm") != describe_path(f"/x/{UID}.5.dcm")


def test_describe_path_relative_to_root_and_ordinary_names_untouched(tmp_path):
    file = tmp_path / "CT" / "series_2" / "slice_0001.dcm"
    assert describe_path(file, root=tmp_path) == "CT/series_2/slice_0001.dcm"
    assert describe_path("v1.2/2024/IM0001") == "v1.2/2024/IM0001"


def test_pseudonymous_key_is_stable_and_separates_parts():
    key = pseudonymous_key("study", UID)
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == pseudonymous_key("study", UID)
    assert pseudonymous_key("1.2", "3") != pseudonymous_key("1", "2.3")


def test_atomic_writes_replace_content_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "out" / "result.json"
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_atomic_path_keeps_the_final_suffix_for_format_sniffing_writers(tmp_path):
    with atomic_path(tmp_path / "map.nii.gz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".map.nii.gz") and tmp.name.startswith(".")
        tmp.write_bytes(b"x")
    assert (tmp_path / "map.nii.gz").read_bytes() == b"x"


def test_error_inside_the_block_removes_the_temp_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_disk_full_is_a_one_line_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    target = tmp_path / f"{UID}.dcm"
    with pytest.raises(AdaptClipError) as info:
        atomic_write_bytes(target, b"x" * 1000)
    message = str(info.value)
    assert "no space left" in message and "\n" not in message and UID not in message
    assert list(tmp_path.iterdir()) == []
