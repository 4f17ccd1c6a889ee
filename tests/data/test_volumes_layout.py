"""The ``volumes`` layout: NIfTI/DICOM studies with label maps sliced like inference slices them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from volume_trees import SHAPE, write_volume_dataset

from adaptclip_med.data.layouts import detect_layout, read_dataset
from adaptclip_med.data import volumes as volumes_layout
from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.nifti import write_nifti
from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window, prepare_volume


@pytest.fixture(scope="module")
def volume_root(tmp_path_factory) -> Path:
    return write_volume_dataset(tmp_path_factory.mktemp("volumes") / "ct_head")


def test_slices_match_the_scorer_and_labels_give_masks(volume_root, tmp_path):
    assert detect_layout(volume_root) == "volumes"
    index = volumes_layout.read_volumes(volume_root, cache_root=tmp_path / "cache")
    assert index.layout == "volumes" and index.classes == ["ct_head"]
    slicing = SlicePreprocessing(window=parse_window("brain"))
    lesion_case = load_study(volume_root / "imagesTr" / "lesion_a_0000.nii.gz")[0]
    prepared = prepare_volume(lesion_case, slicing)
    label = np.asarray(load_study(volume_root / "labelsTr" / "lesion_a.nii.gz")[0].array) > 0
    case_a = sorted((s for s in index.samples if Path(s.image_path).name.startswith("case0001")),
                    key=lambda s: s.image_path)  # cases are numbered in sorted order: broken, lesion_a, lesion_b, normal_c
    body = np.flatnonzero(~prepared.background)
    assert len(case_a) == len(body) and label.any()
    for sample, z in zip(case_a, body):
        pixels = np.asarray(Image.open(sample.image_path))
        np.testing.assert_array_equal(pixels, np.round(prepared.slices01[z] * 255).astype(np.uint8))
        assert sample.label == int(label[z].any()) and sample.split == "test"
        if sample.label:
            np.testing.assert_array_equal(np.asarray(Image.open(sample.mask_path)) > 0, label[z])
        else:
            assert sample.mask_path is None
    dicom_case = [s for s in index.samples if Path(s.image_path).name.startswith("case0002")]
    assert any(s.label for s in dicom_case) and any(not s.label for s in dicom_case)
    # the normal scan only feeds the reference pool; the broken file is skipped with a note naming it
    assert index.normal_pool["ct_head"] and all(Path(p).name.startswith("case0003") for p in index.normal_pool["ct_head"])
    assert not any(Path(s.image_path).name.startswith(("case0000", "case0003")) for s in index.samples)
    assert any("case 0 skipped" in note and "broken_0000.nii.gz" in note for note in index.notes)
    assert all("lesion_" not in Path(s.image_path).name for s in index.samples)  # no original names in the cache


def test_cache_is_reused_and_keyed_by_the_slicing(volume_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = volumes_layout.read_volumes(volume_root, cache_root=cache)
    monkeypatch.setattr(volumes_layout, "_write_case", lambda *a: pytest.fail("slices were made again"))
    again = volumes_layout.read_volumes(volume_root, cache_root=cache)
    assert again.samples == first.samples
    monkeypatch.undo()
    bone = volumes_layout.read_volumes(volume_root, SlicePreprocessing(window=parse_window("bone")), cache_root=cache)
    assert Path(bone.samples[0].image_path).parent != Path(first.samples[0].image_path).parent
    assert len([p for p in cache.iterdir() if not p.name.endswith(".partial")]) == 2


def test_read_dataset_passes_the_slicing_and_a_mismatched_label_is_reported(volume_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_HOME", str(tmp_path / "home"))
    index = read_dataset(volume_root, "auto", SlicePreprocessing(window=parse_window("40,80")))
    assert any("window (40.0, 80.0)" in note for note in index.notes)
    other = tmp_path / "bad"
    (other / "imagesTr").mkdir(parents=True)
    (other / "labelsTr").mkdir()
    hu, _ = make_head_ct_phantom(5, SHAPE)
    write_dicom_series(hu, other / "imagesTr" / "case")
    small, _ = make_head_ct_phantom(6, (4, 48, 48))
    write_dicom_series(small, other / "small")
    write_nifti(np.zeros((4, 48, 48), np.uint8), load_study(other / "small")[0], other / "labelsTr" / "case.nii.gz")
    from adaptclip_med.errors import InputError

    with pytest.raises(InputError, match="does not match its image"):
        read_dataset(other, "volumes")
