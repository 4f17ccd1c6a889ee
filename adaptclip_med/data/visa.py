"""VisA: ``split_csv/1cls.csv`` with columns object, split, label, image, mask (paths relative to
the root; label text "normal" / "anomaly"; empty mask for normal images)."""

from __future__ import annotations

import csv
from pathlib import Path

from adaptclip_med.data.files import display_name, require_file
from adaptclip_med.data.samples import SPLITS, AnomalySample, DatasetIndex, train_normal_pool
from adaptclip_med.errors import InputError

SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": 0, "anomaly": 1}


def looks_like_visa(root: Path) -> bool:
    return (root / SPLIT_CSV).is_file()


def read_visa(root: Path) -> DatasetIndex:
    table = root / SPLIT_CSV
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{display_name(table, root)}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    samples: list[AnomalySample] = []
    for line, raw in enumerate(rows, start=2):
        row = {column: (raw.get(column) or "").strip() for column in COLUMNS}
        label = LABELS.get(row["label"].lower())
        split = row["split"].lower()
        if label is None or split not in SPLITS:
            raise InputError(f"{display_name(table, root)} line {line}: label must be normal/anomaly and "
                             f"split one of {'/'.join(SPLITS)}")
        image = require_file(root / row["image"], root, "image")
        mask = require_file(root / row["mask"], root, "mask") if row["mask"] and label == 1 else None
        samples.append(AnomalySample(image, mask, label, row["object"], split))
    return DatasetIndex(root, "visa", tuple(samples), train_normal_pool(samples))
