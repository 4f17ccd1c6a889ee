"""Tiny on-disk trees of every supported layout, written with 8x8 PNGs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 8


def png(path: Path, value: int = 128, mask_block: bool = False) -> Path:
    """A uniform grey image, or (mask_block) a mask with a 4x4 white square."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((SIZE, SIZE), value, dtype=np.uint8)
    if mask_block:
        array[:] = 0
        array[2:6, 2:6] = 255
    Image.fromarray(array).save(path)
    return path


def mvtec_tree(root: Path) -> Path:
    for name in ("bottle", "cable"):
        png(root / name / "train" / "good" / "000.png")
        png(root / name / "train" / "good" / "001.png")
        png(root / name / "test" / "good" / "000.png")
        png(root / name / "test" / "broken" / "000.png", 200)
        png(root / name / "ground_truth" / "broken" / "000_mask.png", mask_block=True)
    return root


def visa_tree(root: Path) -> Path:
    rows = [
        ("candle", "train", "normal", "candle/Data/Images/Normal/0000.png", ""),
        ("candle", "test", "normal", "candle/Data/Images/Normal/0001.png", ""),
        ("candle", "test", "anomaly", "candle/Data/Images/Anomaly/0000.png", "candle/Data/Masks/Anomaly/0000.png"),
    ]
    for *_, image, mask in rows:
        png(root / image)
        if mask:
            png(root / mask, mask_block=True)
    (root / "split_csv").mkdir(parents=True)
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    return root


def meta_json_tree(root: Path) -> Path:
    def item(img: str, mask: str, anomaly: int, cls: str) -> dict:
        png(root / img)
        if mask:
            png(root / mask, mask_block=True)
        return {"img_path": img, "mask_path": mask, "cls_name": cls, "specie_name": "good" if not anomaly else "x",
                "anomaly": anomaly}

    meta = {
        "train": {"brain": [item("brain/train/good/a.png", "", 0, "brain")]},
        "test": {
            "brain": [item("brain/test/good/b.png", "", 0, "brain"),
                      item("brain/test/tumor/c.png", "brain/gt/tumor/c.png", 1, "brain")],
            "headct": [item("headct/test/bad/d.png", "", 1, "headct"),  # image-level only
                       item("headct/test/good/e.png", "", 0, "headct")],
        },
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def bmad_class(folder: Path, with_train: bool = True, pixel_level: bool = True) -> Path:
    if with_train:
        png(folder / "train" / "good" / "t0.png")
        png(folder / "train" / "good" / "t1.png")
    for split in ("valid", "test"):
        png(folder / split / "good" / "img" / f"{split}_n.png")
        png(folder / split / "Ungood" / "img" / f"{split}_a.png", 200)
        if pixel_level:
            png(folder / split / "good" / "anomaly_mask" / f"{split}_n.png", 0)
            png(folder / split / "Ungood" / "anomaly_mask" / f"{split}_a.png", mask_block=True)
    return folder


def mvfa_tree(root: Path) -> Path:
    bmad_class(root / "Brain_AD", with_train=False)
    bmad_class(root / "Chest_AD", with_train=False, pixel_level=False)
    return root


def generic_tree(root: Path) -> Path:
    png(root / "knee" / "normal" / "n0.png")
    png(root / "knee" / "abnormal" / "a0.png", 200)
    png(root / "knee" / "masks" / "a0.png", mask_block=True)
    png(root / "knee" / "reference" / "r0.png")
    png(root / "wrist" / "normal" / "n0.png")
    png(root / "wrist" / "abnormal" / "a0.png", 200)
    return root
