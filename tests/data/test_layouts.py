"""Layout readers and detection on tiny generated trees."""

from __future__ import annotations

import json

import pytest
from dataset_trees import bmad_class, generic_tree, meta_json_tree, mvfa_tree, mvtec_tree, png, visa_tree

from adaptclip_med.data.layouts import LAYOUTS, Layout, detect_layout, read_dataset, register_layout
from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.errors import InputError


def summary(index: DatasetIndex) -> list[tuple]:
    """(relative image, relative mask or None, label, class, split) per sample."""
    def rel(path):
        return None if path is None else path.relative_to(index.root).as_posix()
    return sorted((rel(s.image_path), rel(s.mask_path), s.label, s.class_name, s.split) for s in index.samples)


def test_mvtec(tmp_path):
    index = read_dataset(mvtec_tree(tmp_path))
    assert index.layout == "mvtec" and index.classes == ["bottle", "cable"]
    bottle = [row for row in summary(index) if row[3] == "bottle"]
    assert bottle == [
        ("bottle/test/broken/000.png", "bottle/ground_truth/broken/000_mask.png", 1, "bottle", "test"),
        ("bottle/test/good/000.png", None, 0, "bottle", "test"),
        ("bottle/train/good/000.png", None, 0, "bottle", "train"),
        ("bottle/train/good/001.png", None, 0, "bottle", "train"),
    ]
    assert [p.name for p in index.normal_pool["bottle"]] == ["000.png", "001.png"]
    assert all(p.parent.name == "good" and p.parent.parent.name == "train" for p in index.normal_pool["cable"])


def test_mvtec_missing_mask_names_the_image(tmp_path):
    mvtec_tree(tmp_path)
    (tmp_path / "cable" / "ground_truth" / "broken" / "000_mask.png").unlink()
    with pytest.raises(InputError, match="cable/test/broken/000.png: no ground_truth/broken/000_mask.png"):
        read_dataset(tmp_path, "mvtec")


def test_visa(tmp_path):
    index = read_dataset(visa_tree(tmp_path))
    assert index.layout == "visa"
    assert summary(index) == [
        ("candle/Data/Images/Anomaly/0000.png", "candle/Data/Masks/Anomaly/0000.png", 1, "candle", "test"),
        ("candle/Data/Images/Normal/0000.png", None, 0, "candle", "train"),
        ("candle/Data/Images/Normal/0001.png", None, 0, "candle", "test"),
    ]
    assert [p.name for p in index.normal_pool["candle"]] == ["0000.png"]


def test_visa_rejects_unknown_label(tmp_path):
    visa_tree(tmp_path)
    table = tmp_path / "split_csv" / "1cls.csv"
    table.write_text(table.read_text().replace("anomaly", "defect"))
    with pytest.raises(InputError, match="1cls.csv line 4"):
        read_dataset(tmp_path)


def test_meta_json(tmp_path):
    index = read_dataset(meta_json_tree(tmp_path))
    assert index.layout == "meta_json" and index.classes == ["brain", "headct"]
    rows = {row[0]: row for row in summary(index)}
    assert rows["brain/test/tumor/c.png"][1:3] == ("brain/gt/tumor/c.png", 1)
    assert rows["headct/test/bad/d.png"][1:3] == (None, 1)  # image-level-only anomaly
    assert rows["brain/train/good/a.png"][4] == "train"
    assert [p.name for p in index.normal_pool["brain"]] == ["a.png"]
    assert "headct" not in index.normal_pool  # no train split for that class


def test_meta_json_missing_file_and_bad_item(tmp_path):
    meta_json_tree(tmp_path)
    (tmp_path / "brain" / "gt" / "tumor" / "c.png").unlink()
    with pytest.raises(InputError, match="brain/gt/tumor/c.png: mask listed by the dataset is missing"):
        read_dataset(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"test": {"brain": [{"img_path": "x.png"}]}}))
    with pytest.raises(InputError, match="test/brain item 0 is malformed"):
        read_dataset(tmp_path)


def test_bmad_pixel_level(tmp_path):
    root = bmad_class(tmp_path / "Brain")
    index = read_dataset(root)
    assert index.layout == "bmad" and index.classes == ["Brain"]
    rows = {row[0]: row for row in summary(index)}
    assert rows["test/Ungood/img/test_a.png"][1:] == ("test/Ungood/anomaly_mask/test_a.png", 1, "Brain", "test")
    assert rows["valid/good/img/valid_n.png"][1:] == (None, 0, "Brain", "valid")
    assert [p.name for p in index.normal_pool["Brain"]] == ["t0.png", "t1.png"]
    assert index.notes == ()


def test_bmad_image_level_and_missing_mask(tmp_path):
    root = bmad_class(tmp_path / "OCT2017", pixel_level=False)
    index = read_dataset(root)
    assert all(s.mask_path is None for s in index.samples)
    assert {s.label for s in index.select(split="test")} == {0, 1}
    pixel_root = bmad_class(tmp_path / "Liver")
    (pixel_root / "valid" / "Ungood" / "anomaly_mask" / "valid_a.png").unlink()
    with pytest.raises(InputError, match="valid/Ungood/img/valid_a.png: no mask"):
        read_dataset(pixel_root)


def test_mvfa(tmp_path):
    index = read_dataset(mvfa_tree(tmp_path))
    assert index.layout == "mvfa" and index.classes == ["Brain", "Chest"]
    assert [p.name for p in index.normal_pool["Brain"]] == ["valid_n.png"]  # no train split in MVFA
    assert any("valid/good" in note for note in index.notes)
    chest = index.select(class_name="Chest", split="test")
    assert sorted((s.label, s.mask_path) for s in chest) == [(0, None), (1, None)]
    brain_anomaly = [s for s in index.select(class_name="Brain", split="test") if s.label == 1]
    assert brain_anomaly[0].mask_path.name == "test_a.png"


def test_generic(tmp_path):
    index = read_dataset(generic_tree(tmp_path))
    assert index.layout == "generic"
    assert summary(index) == [
        ("knee/abnormal/a0.png", "knee/masks/a0.png", 1, "knee", "test"),
        ("knee/normal/n0.png", None, 0, "knee", "test"),
        ("wrist/abnormal/a0.png", None, 1, "wrist", "test"),
        ("wrist/normal/n0.png", None, 0, "wrist", "test"),
    ]
    assert [p.name for p in index.normal_pool["knee"]] == ["r0.png"]
    assert index.normal_pool["wrist"] == ()
    assert index.notes == ("wrist: no reference/ folder; only zero-shot is possible",)


def test_generic_masks_folder_must_cover_all_abnormal_images(tmp_path):
    generic_tree(tmp_path)
    png(tmp_path / "knee" / "abnormal" / "a1.png")
    with pytest.raises(InputError, match="knee/abnormal/a1.png: no mask"):
        read_dataset(tmp_path)


@pytest.mark.parametrize("builder, expected", [
    (mvtec_tree, "mvtec"), (visa_tree, "visa"), (meta_json_tree, "meta_json"),
    (mvfa_tree, "mvfa"), (generic_tree, "generic"),
    (lambda root: bmad_class(root), "bmad"),
])
def test_detect_layout(tmp_path, builder, expected):
    assert detect_layout(builder(tmp_path / "set")) == expected


def test_single_mvtec_class_is_not_taken_for_bmad(tmp_path):
    mvtec_tree(tmp_path)
    with pytest.raises(InputError, match="cannot tell the dataset layout"):
        detect_layout(tmp_path / "bottle")


def test_unusable_roots(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        read_dataset(tmp_path / "absent")
    (tmp_path / "empty" / "knee" / "normal").mkdir(parents=True)
    with pytest.raises(InputError, match="no images found for the generic layout"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(InputError, match="unknown dataset layout 'nifti'"):
        read_dataset(tmp_path / "empty", "nifti")


def test_registered_layout_is_detected_before_generic(tmp_path, monkeypatch):
    monkeypatch.setattr("adaptclip_med.data.layouts.LAYOUTS", dict(LAYOUTS))
    generic_tree(tmp_path)

    def read_volumes(root):
        return DatasetIndex(root, "volumes", (), {})

    register_layout("volumes", Layout(lambda root: (root / "knee").is_dir(), read_volumes))
    from adaptclip_med.data import layouts

    assert list(layouts.LAYOUTS)[-2:] == ["volumes", "generic"]
    assert detect_layout(tmp_path) == "volumes"
