"""What a training run learns from: the annotated images of one split, the normal images each
query may be paired with, and the per-epoch order (shared by every method's training).

The query order of epoch e is a pure function of (seed, e) (string-seeded
``random.Random``, which does not depend on PYTHONHASHSEED), so an interrupted run resumed at
epoch e sees exactly what an uninterrupted one would.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from adaptclip_med.data.samples import AnomalySample, DatasetIndex
from adaptclip_med.data.torch_dataset import load_mask
from adaptclip_med.errors import InputError
from adaptclip_med.utils.redact import redact_component

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """Everything a training run needs besides the model and its settings: images and pairing pools."""

    samples: list[AnomalySample]
    pools: dict[str, list[Path]]
    dataset_label: str
    layout: str


def prepare_run(index: DatasetIndex, split: str) -> TrainingRun:
    """Pick the training images and, per class, the normal images queries are paired with: the
    class's normal pool (never test images in the layouts that have one), else the normal
    images among the training images themselves.  (Method-specific settings are validated by
    the caller: AdaptCLIP's BatchNorm needs batches of two, AdaCLIP trains on single images.)"""
    samples = list(index.samples) if split == "all" else index.select(split=split)
    if len(samples) < 2:
        raise InputError(f"{redact_component(index.root.name)}: {len(samples)} image(s) in the {split} split; training needs at least 2")
    if not any(s.label == 1 for s in samples):
        log.warning("the %s split has no anomalous image: the adapters will only see normal examples", split)
    pools: dict[str, list[Path]] = {}
    for name in sorted({s.class_name for s in samples}):
        pool = list(index.normal_pool.get(name, ()))
        if not pool:
            pool = [s.image_path for s in samples if s.class_name == name and s.label == 0]
        if not pool:
            raise InputError(f"{redact_component(index.root.name)}: class {name} has no normal image to pair its training queries with")
        pools[name] = sorted(Path(p) for p in pool)
    return TrainingRun(samples, pools, dataset_label=redact_component(index.root.name), layout=index.layout)


def epoch_order(count: int, seed: int, epoch: int, batch_size: int) -> list[list[int]]:
    """Shuffled batches of sample indices for one epoch; with batches of several images a final
    batch of ONE image is dropped (BatchNorm cannot train on it)."""
    order = list(range(count))
    random.Random(f"{seed}:{epoch}:order").shuffle(order)
    batches = [order[i:i + batch_size] for i in range(0, count, batch_size)]
    return batches if batch_size == 1 else [b for b in batches if len(b) > 1]


def load_training_mask(sample: AnomalySample, size: int) -> torch.Tensor:
    """(size, size) 0/1 mask: bilinear resize then threshold 0.5 (the recipe); zeros without a mask."""
    if sample.mask_path is None:
        return torch.zeros(size, size)
    with Image.open(sample.image_path) as image:
        source_size = image.size
    return load_mask(Path(sample.mask_path), size, "bilinear", source_size)[0]
