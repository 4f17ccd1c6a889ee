from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.fileset import FileSet

from adaptclip_med.batch.discovery import discover_folder
from adaptclip_med.io.discovery import study_key_for_uid
from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_scan import scan_dicom

from tests.support.dicom_studies import good_study, identifiers, mixed_tree


def test_studies_are_grouped_by_header_uids_not_folders(tmp_path):
    tree = mixed_tree(tmp_path / "src")
    found = discover_folder(tree.root)
    by_key = {task.key: task for task in found.studies}
    expected = [*tree.good, tree.localizer_only, tree.truncated_only, tree.with_truncated_slice]
    assert sorted(by_key) == sorted(s.key for s in expected)
    assert [t.key for t in found.studies] == sorted(by_key)  # deterministic order for sharding
    split = tree.good[0]  # files in export_a and export_b/more
    assert sorted(by_key[split.key].files) == sorted(str(p) for p in split.files)
    shared_folder = tree.good[1]  # shares export_a with the first study
    assert sorted(by_key[shared_folder.key].files) == sorted(str(p) for p in shared_folder.files)
    assert [e.reason for e in found.file_errors] == ["not a DICOM file"]  # named by key: paths hold names
    assert found.file_index[found.file_errors[0].key] == "broken/garbage.dcm"


def test_study_key_is_the_scanners_pseudonymous_key_and_hides_the_uid(tmp_path):
    study = good_study(tmp_path, "one", seed=0)
    scanned = scan_dicom(study.folder)
    assert study_key_for_uid(study.uid) == scanned[0].study_key == study.key
    task = discover_folder(study.folder).studies[0]
    assert study.uid not in repr(task) and str(study.folder) not in repr(task)
    for secret in identifiers(study):
        assert secret not in task.key


def test_dicomdir_listing_missing_files_is_reported(tmp_path):
    study = good_study(tmp_path / "media", "series", seed=0)
    fileset = FileSet()
    for path in study.files:
        fileset.add(pydicom.dcmread(path))
    fileset.write(tmp_path / "disk")
    disk = tmp_path / "disk"
    shutil.rmtree(study.folder)
    found = discover_folder(disk)
    assert [t.key for t in found.studies] == [study.key]  # DICOMDIR itself is not a study nor an error
    assert found.file_errors == []
    referenced = sorted(p for p in disk.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    referenced[0].unlink()
    found = discover_folder(disk)
    assert len(found.file_errors) == 1 and found.file_errors[0].reason.endswith("listed in DICOMDIR but missing")
    assert len(found.studies[0].files) == len(study.files) - 1


def test_dicomdir_with_changed_case_is_not_reported_missing(tmp_path):
    study = good_study(tmp_path / "media", "series", seed=0)
    fileset = FileSet()
    for path in study.files:
        fileset.add(pydicom.dcmread(path))
    fileset.write(tmp_path / "disk")
    for path in sorted((tmp_path / "disk").rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.name != "DICOMDIR":
            path.rename(path.with_name(path.name.lower()))  # media mounted with lower-case names
    assert discover_folder(tmp_path / "disk").file_errors == []


def test_missing_source_is_a_one_line_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        discover_folder(tmp_path / "nowhere")
