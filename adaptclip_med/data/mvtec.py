"""MVTec AD folders: ``<class>/train/good``, ``<class>/test/<defect>`` and
``<class>/ground_truth/<defect>/<stem>_mask.png``."""

from __future__ import annotations

from pathlib import Path

from adaptclip_med.data.files import display_name, images_by_stem, list_images, subfolders
from adaptclip_med.data.samples import AnomalySample, DatasetIndex
from adaptclip_med.errors import InputError

NORMAL_FOLDER = "good"


def is_mvtec_class(folder: Path) -> bool:
    return (folder / "train" / NORMAL_FOLDER).is_dir() and (folder / "test").is_dir()


def looks_like_mvtec(root: Path) -> bool:
    return any(is_mvtec_class(child) for child in subfolders(root))


def read_mvtec(root: Path) -> DatasetIndex:
    samples: list[AnomalySample] = []
    pool: dict[str, tuple[Path, ...]] = {}
    for class_dir in filter(is_mvtec_class, subfolders(root)):
        name = class_dir.name
        train = list_images(class_dir / "train" / NORMAL_FOLDER)
        pool[name] = tuple(train)
        samples += [AnomalySample(p, None, 0, name, "train") for p in train]
        for defect_dir in subfolders(class_dir / "test"):
            images = list_images(defect_dir)
            if defect_dir.name == NORMAL_FOLDER:
                samples += [AnomalySample(p, None, 0, name, "test") for p in images]
                continue
            masks = images_by_stem(class_dir / "ground_truth" / defect_dir.name)
            for image in images:
                mask = masks.get(f"{image.stem}_mask")
                if mask is None:
                    raise InputError(f"{display_name(image, root)}: no ground_truth/{defect_dir.name}/{image.stem}_mask.png")
                samples.append(AnomalySample(image, mask, 1, name, "test"))
    return DatasetIndex(root, "mvtec", tuple(samples), pool)
