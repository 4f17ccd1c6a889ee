"""A plain layout for users' own data: ``<root>/<class>/{normal,abnormal}/*.png`` with optional
``<root>/<class>/masks/<same stem>.png`` for abnormal images (all of them once the folder exists) and optional
``<root>/<class>/reference/*.png`` holding normal images for few-shot references.

Everything under ``normal/`` and ``abnormal/`` is a test image.  References are never drawn from
the test images themselves (a query compared with itself would look perfectly normal), so
without a ``reference/`` folder only zero-shot evaluation is possible, and the index notes it.
"""

from __future__ import annotations

from pathlib import Path

from adaptclip_med.data.files import display_name, images_by_stem, list_images, subfolders
from adaptclip_med.data.samples import AnomalySample, DatasetIndex
from adaptclip_med.errors import InputError

NORMAL, ABNORMAL, MASKS, REFERENCE = "normal", "abnormal", "masks", "reference"


def is_generic_class(folder: Path) -> bool:
    return (folder / NORMAL).is_dir() or (folder / ABNORMAL).is_dir()


def looks_like_generic(root: Path) -> bool:
    return any(is_generic_class(child) for child in subfolders(root))


def _mask_for(image: Path, masks: dict[str, Path], root: Path) -> Path | None:
    """Once a class has a masks/ folder every abnormal image needs its mask: silently treating
    one as image-level-only would quietly shrink the pixel-level evaluation."""
    if not masks:
        return None
    if image.stem not in masks:
        raise InputError(f"{display_name(image, root)}: no mask with the same name in {MASKS}/")
    return masks[image.stem]


def read_generic(root: Path) -> DatasetIndex:
    samples: list[AnomalySample] = []
    pool: dict[str, tuple[Path, ...]] = {}
    notes: list[str] = []
    for class_dir in filter(is_generic_class, subfolders(root)):
        name = class_dir.name
        masks = images_by_stem(class_dir / MASKS)
        samples += [AnomalySample(p, None, 0, name, "test") for p in list_images(class_dir / NORMAL)]
        samples += [AnomalySample(p, _mask_for(p, masks, root), 1, name, "test") for p in list_images(class_dir / ABNORMAL)]
        pool[name] = tuple(list_images(class_dir / REFERENCE))
        if not pool[name]:
            notes.append(f"{name}: no {REFERENCE}/ folder; only zero-shot is possible")
    return DatasetIndex(root, "generic", tuple(samples), pool, tuple(notes))
