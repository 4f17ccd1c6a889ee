"""BMAD and MVFA medical benchmark folders.

BMAD (one class per root, named after the root folder)::

    train/good/*.png
    valid/{good,Ungood}/img/*.png      (+ anomaly_mask/*.png for pixel-level sets)
    test/{good,Ungood}/img/*.png       (+ anomaly_mask/*.png for pixel-level sets)

MVFA puts several such class folders, named ``<Class>_AD`` and WITHOUT a train split, under one
root.  Image-level-only sets (OCT2017, RSNA chest, Camelyon16, HIS...) have no ``anomaly_mask``
folder; their anomalous samples get ``mask_path=None``.  Images lying directly in ``good/`` or
``Ungood/`` (no ``img/``) are accepted too.

Few-shot references come from ``train/good``; where there is no train split (MVFA) they come from
``valid/good``, the only normal images outside the test split, and the index notes it.
"""

from __future__ import annotations

from pathlib import Path

from adaptclip_med.data.files import display_name, images_by_stem, list_images, subfolders
from adaptclip_med.data.samples import AnomalySample, DatasetIndex
from adaptclip_med.errors import InputError

NORMAL, ANOMALOUS = "good", "Ungood"
IMAGE_FOLDER, MASK_FOLDER = "img", "anomaly_mask"
EVALUATION_SPLITS = ("valid", "test")
MVFA_SUFFIX = "_AD"


def is_bmad_class(folder: Path) -> bool:
    """An ``Ungood`` folder or a ``good/img`` folder: a bare ``test/good`` alone would also match
    a single MVTec class."""
    return any((folder / split / ANOMALOUS).is_dir() or (folder / split / NORMAL / IMAGE_FOLDER).is_dir()
               for split in EVALUATION_SPLITS)


def looks_like_bmad(root: Path) -> bool:
    return is_bmad_class(root)


def looks_like_mvfa(root: Path) -> bool:
    return any(child.name.endswith(MVFA_SUFFIX) and is_bmad_class(child) for child in subfolders(root))


def class_name_of(folder: Path) -> str:
    name = folder.name
    return name[: -len(MVFA_SUFFIX)] if name.endswith(MVFA_SUFFIX) and len(name) > len(MVFA_SUFFIX) else name


def _images(folder: Path) -> list[Path]:
    return list_images(folder / IMAGE_FOLDER) if (folder / IMAGE_FOLDER).is_dir() else list_images(folder)


def _anomalous(folder: Path, root: Path, class_name: str, split: str) -> list[AnomalySample]:
    images = _images(folder)
    if not (folder / MASK_FOLDER).is_dir():
        return [AnomalySample(p, None, 1, class_name, split) for p in images]
    masks = images_by_stem(folder / MASK_FOLDER)
    samples = []
    for image in images:
        if image.stem not in masks:
            raise InputError(f"{display_name(image, root)}: no mask with the same name in {MASK_FOLDER}/")
        samples.append(AnomalySample(image, masks[image.stem], 1, class_name, split))
    return samples


def read_bmad_class(folder: Path, root: Path) -> tuple[list[AnomalySample], tuple[Path, ...], list[str]]:
    """Samples, normal reference pool and notes of one BMAD-style class folder."""
    name = class_name_of(folder)
    train = _images(folder / "train" / NORMAL)
    samples = [AnomalySample(p, None, 0, name, "train") for p in train]
    for split in EVALUATION_SPLITS:
        samples += [AnomalySample(p, None, 0, name, split) for p in _images(folder / split / NORMAL)]
        samples += _anomalous(folder / split / ANOMALOUS, root, name, split)
    notes = []
    pool = tuple(train)
    if not pool:
        pool = tuple(s.image_path for s in samples if s.split == "valid" and s.label == 0)
        notes.append(f"{name}: no train split; few-shot references are drawn from valid/good"
                     if pool else f"{name}: no normal train or valid images; only zero-shot is possible")
    return samples, pool, notes


def read_bmad(root: Path) -> DatasetIndex:
    samples, pool, notes = read_bmad_class(root, root)
    return DatasetIndex(root, "bmad", tuple(samples), {class_name_of(root): pool}, tuple(notes))


def read_mvfa(root: Path) -> DatasetIndex:
    samples: list[AnomalySample] = []
    pools: dict[str, tuple[Path, ...]] = {}
    notes: list[str] = []
    for folder in subfolders(root):
        if folder.name.endswith(MVFA_SUFFIX) and is_bmad_class(folder):
            class_samples, pool, class_notes = read_bmad_class(folder, root)
            samples += class_samples
            pools[class_name_of(folder)] = pool
            notes += class_notes
    return DatasetIndex(root, "mvfa", tuple(samples), pools, tuple(notes))
