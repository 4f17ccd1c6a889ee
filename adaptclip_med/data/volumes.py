"""Layout ``volumes``: 3-D studies with lesion label maps, sliced for training and evaluation.

Medical auxiliary data usually comes as volumes plus label maps, not as 2-D images.  This layout
reads them with the SAME readers, orientation and windowing as inference
(:func:`adaptclip_med.io.loader.load_study`, :func:`adaptclip_med.slice_preprocessing.prepare_volume`),
so a model trained or evaluated here sees the slices the scorer will see, and no conversion script
is needed.  Folder convention (Medical Segmentation Decathlon / nnU-Net naming)::

    <root>/imagesTr/<case>.nii.gz | <case>_0000.nii.gz | <case>.mha/.nrrd | <case>/   (volume file or DICOM folder)
    <root>/labelsTr/<case>.nii.gz     label map in the image's geometry, > 0 = anomalous;
                                      a case WITHOUT a label file is a normal scan
    <root>/dataset.json               optional: "name" (the class name) and
                                      "adaptclip": {"window": "brain", "axis": "axial"}

(``images/`` + ``labels/`` are accepted too.)  Cases with a label file become ``test`` samples:
every body slice (air-only slices are skipped, as in scoring), anomalous when its label slice has
any voxel > 0, with that slice as the pixel mask.  Normal scans only feed the reference pool, so
few-shot references are never drawn from evaluated slices.

Slices are written once, as 8-bit grey PNGs (the precision CLIP inputs have anyway) with 0/255
mask PNGs, into a cache folder keyed by the cases' paths, sizes and modification times and the
slicing settings; file names carry case numbers, never the original names.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adaptclip_med.data.samples import AnomalySample, DatasetIndex
from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import VOLUME_FILE_SUFFIXES
from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.utils.redact import describe_path

IMAGE_DIRS = ("imagesTr", "images")
LABEL_DIRS = ("labelsTr", "labels")
CHANNEL_SUFFIX = "_0000"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class VolumeCase:
    """One study of the layout: its image (file or DICOM folder) and label map, if any."""

    name: str
    image: Path
    label: Path | None


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def looks_like_volumes(root: Path) -> bool:
    images = _first_dir(root, IMAGE_DIRS)
    return images is not None and any(_case_name(p) is not None for p in images.iterdir())


def _case_name(path: Path) -> str | None:
    """The case a path under the images folder stands for (None: not a volume)."""
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return path.name
    for suffix in VOLUME_FILE_SUFFIXES:
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            return stem[: -len(CHANNEL_SUFFIX)] if stem.endswith(CHANNEL_SUFFIX) else stem
    return None


def list_cases(root: Path) -> list[VolumeCase]:
    images = _first_dir(root, IMAGE_DIRS)
    if images is None:
        raise InputError(f"{describe_path(root)}: no imagesTr/ (or images/) folder")
    labels_dir = _first_dir(root, LABEL_DIRS)
    cases = []
    for path in sorted(images.iterdir()):
        name = _case_name(path)
        if name is None:
            continue
        label = None
        if labels_dir is not None:
            label = next((labels_dir / f"{name}{s}" for s in VOLUME_FILE_SUFFIXES if (labels_dir / f"{name}{s}").is_file()), None)
        cases.append(VolumeCase(name, path, label))
    return cases


def slicing_from_dataset_json(root: Path) -> tuple[str, SlicePreprocessing]:
    """Class name and slicing settings from the optional ``dataset.json``."""
    meta_file = root / "dataset.json"
    meta = {}
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{describe_path(meta_file)}: not valid JSON ({exc.__class__.__name__})") from exc
    settings = meta.get("adaptclip", {}) if isinstance(meta, dict) else {}
    name = str(meta.get("name") or root.name) if isinstance(meta, dict) else root.name
    return name, SlicePreprocessing(window=parse_window(settings.get("window")), axis=settings.get("axis", "axial"))


def _cache_key(root: Path, cases: list[VolumeCase], slicing: SlicePreprocessing) -> str:
    def stamp(path: Path) -> list:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]

    payload = {"root": str(root.resolve()), "format": CACHE_FORMAT, "slicing": slicing.describe(),
               "cases": [[c.name, stamp(c.image), stamp(c.label) if c.label else None] for c in cases]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _load_case(case: VolumeCase, slicing: SlicePreprocessing):
    """(windowed slices in [0, 1], background flags, label volume or None) in the scorer's frame."""
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.slice_preprocessing import prepare_volume

    volume, _ = load_study(case.image, axis=slicing.axis)
    prepared = prepare_volume(volume, slicing)
    label = None
    if case.label is not None:
        label_volume, _ = load_study(case.label, axis=slicing.axis)
        label = np.asarray(label_volume.array) > 0
        if label.shape != prepared.slices01.shape:
            raise InputError(f"{describe_path(case.label)}: label map {label.shape} does not match its image "
                             f"{prepared.slices01.shape} (it must be in the image's geometry)")
    return prepared.slices01, prepared.background, label


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


def _write_case(index: int, case: VolumeCase, slicing: SlicePreprocessing, folder: Path) -> list[dict]:
    slices, background, label = _load_case(case, slicing)
    records = []
    for z in np.flatnonzero(~background):
        stem = f"case{index:04d}_z{int(z):04d}"
        _save_png(np.round(np.clip(slices[z], 0, 1) * 255).astype(np.uint8), folder / f"{stem}.png")
        record = {"image": f"{stem}.png", "case": index, "slice": int(z), "normal_scan": label is None, "label": 0, "mask": None}
        if label is not None and label[z].any():
            _save_png(label[z].astype(np.uint8) * 255, folder / f"{stem}_mask.png")
            record.update(label=1, mask=f"{stem}_mask.png")
        records.append(record)
    return records


def materialise_slices(root: Path, slicing: SlicePreprocessing, cache_root: Path) -> tuple[Path, list[dict], list[str]]:
    """Slice every case once into ``cache_root/<key>/``; returns (folder, slice records, notes).

    Written into a staging folder and renamed when complete, so an interrupted run never leaves
    a cache that looks finished.  An unreadable case is skipped with a note naming it."""
    cases = list_cases(root)
    if not cases:
        raise InputError(f"{describe_path(root)}: no volumes in imagesTr/")
    folder = Path(cache_root) / _cache_key(root, cases, slicing)
    index_file = folder / "slices.json"
    if index_file.is_file():
        stored = json.loads(index_file.read_text())
        return folder, stored["slices"], stored["notes"]
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    records: list[dict] = []
    notes: list[str] = []
    for number, case in enumerate(progress_bar(cases, desc="slicing volumes", unit="case")):
        try:
            records += _write_case(number, case, slicing, staging)
        except InputError as exc:
            notes.append(f"case {number} skipped: {exc}")
    if not records:
        shutil.rmtree(staging, ignore_errors=True)
        raise InputError(f"{describe_path(root)}: no readable volume ({'; '.join(notes)})")
    (staging / "slices.json").write_text(json.dumps({"slices": records, "notes": notes, "slicing": slicing.describe()}))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder, records, notes


def read_volumes(root: Path, slicing: SlicePreprocessing | None = None, cache_root: Path | None = None) -> DatasetIndex:
    """The ``volumes`` layout as a :class:`DatasetIndex` of cached slice images (see module doc).

    ``slicing`` overrides the window/axis of ``dataset.json``."""
    from adaptclip_med.utils.home import home

    root = Path(root)
    class_name, configured = slicing_from_dataset_json(root)
    slicing = slicing or configured
    folder, records, notes = materialise_slices(root, slicing, cache_root or home() / "slices")
    samples, pool = [], []
    for record in records:
        image = folder / record["image"]
        if record["normal_scan"]:
            pool.append(image)
        else:
            mask = folder / record["mask"] if record["mask"] else None
            samples.append(AnomalySample(image, mask, int(record["label"]), class_name, "test"))
    window = slicing.window if slicing.window is not None else "per-volume percentiles"
    notes = [*notes, f"{class_name}: volumes sliced along the {slicing.axis} axis, window {window}, air-only slices skipped"]
    if not pool:
        notes.append(f"{class_name}: no normal scans (cases without a label map): few-shot evaluation needs some; "
                     "training pairs queries with lesion-free slices instead")
    return DatasetIndex(root, "volumes", tuple(samples), {class_name: tuple(sorted(pool))}, tuple(notes))
