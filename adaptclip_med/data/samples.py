"""The uniform sample record every dataset layout is read into.

Readers for very different folder conventions (MVTec AD, VisA, meta.json, BMAD, MVFA, plain
folders) all produce the same :class:`DatasetIndex`, so training, evaluation and few-shot
reference sampling never need to know which layout a set came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class AnomalySample:
    """One image with its ground truth.

    ``mask_path`` None means no pixel ground truth: for a normal image that is an all-zero mask;
    for an anomalous image it means the set is labelled at image level only.
    """

    image_path: Path
    mask_path: Path | None
    label: int  # 0 normal, 1 anomalous
    class_name: str
    split: str  # "train" | "valid" | "test"

    @property
    def has_pixel_truth(self) -> bool:
        """Whether pixel metrics may use this image (normal images are known all-normal)."""
        return self.label == 0 or self.mask_path is not None


@dataclass(frozen=True)
class DatasetIndex:
    """All samples of a dataset root plus, per class, the normal images few-shot references may be
    drawn from (never test images).  ``notes`` states layout-specific protocol caveats that a
    report should repeat."""

    root: Path
    layout: str
    samples: tuple[AnomalySample, ...]
    normal_pool: Mapping[str, tuple[Path, ...]]
    notes: tuple[str, ...] = field(default=())

    @property
    def classes(self) -> list[str]:
        return sorted({sample.class_name for sample in self.samples})

    def select(self, split: str | None = None, class_name: str | None = None) -> list[AnomalySample]:
        """Samples of one split and/or class, in reading order."""
        return [s for s in self.samples
                if (split is None or s.split == split) and (class_name is None or s.class_name == class_name)]


def train_normal_pool(samples: Iterable[AnomalySample]) -> dict[str, tuple[Path, ...]]:
    """Per class, the normal images of the train split: where few-shot references come from in
    layouts that list splits explicitly."""
    pool: dict[str, list[Path]] = {}
    for sample in samples:
        if sample.split == "train" and sample.label == 0:
            pool.setdefault(sample.class_name, []).append(sample.image_path)
    return {name: tuple(sorted(paths)) for name, paths in pool.items()}
