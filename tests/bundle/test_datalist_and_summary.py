"""Which studies a run scores, how they are named, and the run summary."""

from __future__ import annotations

import json

import pytest

from adaptclip_med.bundle_support import discover_studies, read_datalist, summarise_outputs, write_summary
from adaptclip_med.errors import InputError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_each_entry_is_a_study_and_keys_hide_identifying_names(tmp_path):
    touch(tmp_path / "DOE_JOHN_19700101" / "IM0001")
    touch(tmp_path / "1.2.840.10008.5.1.4" / "a.dcm")
    touch(tmp_path / "brain.nii.gz")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden" / "x.dcm")
    items = discover_studies(tmp_path)
    assert [item["image"].rsplit("/", 1)[-1] for item in items] == ["1.2.840.10008.5.1.4", "DOE_JOHN_19700101", "brain.nii.gz"]
    keys = [item["study"] for item in items]
    assert len(set(keys)) == 3 and all(k.startswith("study-") for k in keys)
    assert not any("DOE" in k or "1.2.840" in k for k in keys)
    assert keys == [item["study"] for item in discover_studies(tmp_path)]  # stable: every rank agrees


def test_metaimage_and_nrrd_files_are_studies(tmp_path):
    for name in ("head.mha", "chest.nrrd", "split.mhd", "split.raw", "notes.txt"):
        touch(tmp_path / name)
    names = [item["image"].rsplit("/", 1)[-1] for item in discover_studies(tmp_path)]
    assert names == ["chest.nrrd", "head.mha", "split.mhd"]  # the .raw data file is not a study


def test_a_folder_of_dicom_files_is_one_study(tmp_path):
    for i in range(3):
        touch(tmp_path / f"IM{i:04d}")
    assert [item["image"] for item in discover_studies(tmp_path)] == [str(tmp_path)]


def test_empty_or_missing_dataset_dir_is_a_one_line_input_error(tmp_path):
    with pytest.raises(InputError, match="no studies found"):
        discover_studies(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        discover_studies(tmp_path / "missing")


def test_decathlon_style_datalist_resolves_paths_against_dataset_dir(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps({"testing": [{"image": "a/study", "label": "a/mask.nii.gz"},
                                                                {"image": "/abs/other.nii.gz"}]}))
    items = read_datalist(tmp_path / "list.json", tmp_path)
    assert items[0]["image"] == str(tmp_path / "a" / "study") and items[0]["label"] == str(tmp_path / "a" / "mask.nii.gz")
    assert items[1]["image"] == "/abs/other.nii.gz" and "label" not in items[1]
    assert items[0]["study"] != items[1]["study"]
    (tmp_path / "bad.json").write_text(json.dumps({"training": []}))
    with pytest.raises(InputError, match="no 'testing' list"):
        read_datalist(tmp_path / "bad.json", tmp_path)


def test_summary_orders_by_score_and_lists_missing_studies(tmp_path):
    for study, score, shots in (("study-a", 0.2, 0), ("study-b", 0.9, 3)):
        (tmp_path / study).mkdir()
        (tmp_path / study / "study.json").write_text(json.dumps({"score": score, "threshold": 0.5, "scoring": {"shots": shots},
                                                                 "top_slices": [{"index": 4}, {"index": 7}]}))
    datalist = [{"study": "study-a", "image": str(tmp_path / "in" / "1.2.840.10008.77.1")},
                {"study": "study-b", "image": str(tmp_path / "in" / "head.nii.gz")}, {"study": "study-c"}]
    rows = summarise_outputs(tmp_path, datalist, tmp_path / "in")
    assert [(r["study"], r["status"], r["mode"]) for r in rows] == [
        ("study-b", "done", "3-shot"), ("study-a", "done", "zero-shot"), ("study-c", "missing", "")]
    write_summary(tmp_path, datalist, tmp_path / "in")
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0] == "study,status,score,mode,top_slices,threshold,input"
    assert lines[1] == "study-b,done,0.9,3-shot,4 7,0.5,head.nii.gz" and lines[3] == "study-c,missing,,,,,"
    assert "1.2.840" not in lines[2] and ",uid-" in lines[2]  # the UID-named input is hashed


def test_studies_are_windowed_like_the_reference_bank_unless_told_otherwise(demo_dir):
    from adaptclip_med.bundle_support import study_window

    bank = str(next((demo_dir / "banks").glob("demo-*")))
    assert study_window(None, bank) == "brain"  # the demo bank was built with the brain window
    assert study_window(None, bank, zero_shot=True) is None  # zero-shot ignores the bank
    assert study_window("40,80", bank) == "40,80" and study_window(None, None) is None
