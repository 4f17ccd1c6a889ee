"""AnomalyCLIP-style ``meta.json``: {"train": {class: [item]}, "test": {class: [item]}} with item
= {img_path, mask_path, cls_name, specie_name, anomaly}; paths relative to the root.

An anomalous item with an empty ``mask_path`` is image-level only (e.g. HeadCT, BrainMRI).
"""

from __future__ import annotations

import json
from pathlib import Path

from adaptclip_med.data.files import display_name, require_file
from adaptclip_med.data.samples import SPLITS, AnomalySample, DatasetIndex, train_normal_pool
from adaptclip_med.errors import InputError

META_FILE = "meta.json"


def looks_like_meta_json(root: Path) -> bool:
    return (root / META_FILE).is_file()


def _sample(root: Path, split: str, class_key: str, item: dict) -> AnomalySample:
    label = int(item["anomaly"])
    if label not in (0, 1):
        raise ValueError("anomaly must be 0 or 1")
    image = require_file(root / item["img_path"], root, "image")
    mask_text = item.get("mask_path") or ""
    mask = require_file(root / mask_text, root, "mask") if mask_text and label == 1 else None
    return AnomalySample(image, mask, label, item.get("cls_name") or class_key, split)


def read_meta_json(root: Path) -> DatasetIndex:
    meta_path = root / META_FILE
    name = display_name(meta_path, root)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{name}: not readable JSON ({exc.__class__.__name__})") from exc
    if not isinstance(meta, dict) or not set(meta) <= set(SPLITS):
        raise InputError(f"{name}: top-level keys must be among {', '.join(SPLITS)}")
    samples: list[AnomalySample] = []
    for split, classes in meta.items():
        for class_key, items in classes.items():
            for position, item in enumerate(items):
                try:
                    samples.append(_sample(root, split, class_key, item))
                except (KeyError, TypeError, ValueError) as exc:
                    raise InputError(f"{name}: {split}/{class_key} item {position} is malformed "
                                     f"({exc.__class__.__name__}: {exc})") from exc
    return DatasetIndex(root, "meta_json", tuple(samples), train_normal_pool(samples))
