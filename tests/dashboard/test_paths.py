"""Allowed-roots safety: nothing outside the configured folders can be read through the dashboard."""

from __future__ import annotations

import os

import pytest

from adaptclip_med.errors import PathNotAllowedError
from adaptclip_med.review.paths import AllowedRoots


@pytest.fixture()
def layout(tmp_path):
    root = tmp_path / "root"
    (root / "study").mkdir(parents=True)
    (root / "study" / "a.dcm").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.dcm").write_bytes(b"y")
    return root, outside


def test_paths_inside_are_resolved(layout):
    root, _ = layout
    roots = AllowedRoots([root])
    assert roots.check(root / "study" / "a.dcm") == (root / "study" / "a.dcm").resolve()
    assert roots.check("study") == (root / "study").resolve()  # relative to the root


def test_dotdot_is_rejected_even_when_it_lands_inside(layout):
    root, _ = layout
    roots = AllowedRoots([root])
    with pytest.raises(PathNotAllowedError, match=r"'\.\.'"):
        roots.check(root / "study" / ".." / "study")
    with pytest.raises(PathNotAllowedError):
        roots.check("../outside/secret.dcm")


def test_absolute_path_elsewhere_is_rejected(layout):
    root, outside = layout
    with pytest.raises(PathNotAllowedError, match="outside the configured data roots"):
        AllowedRoots([root]).check(outside / "secret.dcm")
    assert not AllowedRoots([root]).contains("/etc/passwd")


def test_symlink_leading_out_is_rejected_and_inside_is_allowed(layout):
    root, outside = layout
    os.symlink(outside, root / "escape")
    os.symlink(root / "study", root / "alias")
    roots = AllowedRoots([root])
    with pytest.raises(PathNotAllowedError, match="symlink"):
        roots.check(root / "escape" / "secret.dcm")
    assert roots.check(root / "alias" / "a.dcm") == (root / "study" / "a.dcm").resolve()


def test_walk_skips_symlinks_out_hidden_files_and_stops_at_limit(layout):
    root, outside = layout
    os.symlink(outside / "secret.dcm", root / "link.dcm")
    (root / ".hidden").write_bytes(b"z")
    for i in range(5):
        (root / f"f{i}.dcm").write_bytes(b"1")
    roots = AllowedRoots([root])
    names = {p.name for p in roots.walk_files(limit=100)}
    assert "link.dcm" not in names and ".hidden" not in names and "a.dcm" in names
    assert len(list(roots.walk_files(limit=3))) == 3


def test_no_roots_means_nothing_is_readable(tmp_path):
    with pytest.raises(PathNotAllowedError, match="no data roots"):
        AllowedRoots([]).check(tmp_path)
