"""Which studies a bundle run scores: every study under ``dataset_dir``, or a MONAI datalist.

A bundle user points ``--dataset_dir`` at a folder of studies; each entry of the folder is one
study (a DICOM folder, a NIfTI file, or a 2-D image), and a folder holding DICOM files directly is
itself one study.  The study reader picks the series inside each study.  Items are sorted by name
so every process of a multi-process run sees the same list, which is what makes sharding by rank
deterministic.

Each item carries ``study``, the name of its output folder: a pseudonymous hash of the study's
path relative to ``dataset_dir``, because folder names exported from PACS are often patient
names, IDs or Study Instance UIDs and must not reappear in output file names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import VOLUME_FILE_SUFFIXES
from adaptclip_med.preprocess import IMAGE_SUFFIXES
from adaptclip_med.utils.redact import describe_path, pseudonymous_key

#: Files that never hold image data and may sit next to studies (exports, notes, checksums).
IGNORED_SUFFIXES = (".json", ".csv", ".txt", ".md", ".xml", ".sha256", ".md5")


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def _is_study_file(path: Path) -> bool:
    return path.is_file() and _has_suffix(path, VOLUME_FILE_SUFFIXES + IMAGE_SUFFIXES)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def study_key(study: Path, root: Path) -> str:
    """Output folder name of a study: stable across runs and processes, free of identifiers."""
    relative = study.resolve().relative_to(root.resolve()) if study.resolve() != root.resolve() else Path(".")
    return f"study-{pseudonymous_key(relative.as_posix())}"


def discover_studies(dataset_dir: str | Path) -> list[dict[str, Any]]:
    """``[{"image": path, "study": key}]`` for every study in ``dataset_dir`` (sorted by name)."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(f"{describe_path(root)}: dataset_dir is not a folder")
    entries = _visible(root)
    folders = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file() and not _has_suffix(p, IGNORED_SUFFIXES)]
    if files and not folders and not any(_is_study_file(p) for p in files):
        studies = [root]  # the folder itself is one DICOM study
    else:
        studies = folders + [p for p in files if _is_study_file(p)]
    if not studies:
        raise InputError(f"{describe_path(root)}: no studies found (expected DICOM folders, NIfTI files or images)")
    return [{"image": str(study), "study": study_key(study, root)} for study in studies]


def read_datalist(datalist_file: str | Path, dataset_dir: str | Path, key: str = "testing") -> list[dict[str, Any]]:
    """Items of a MONAI (Decathlon-style) datalist JSON: ``{key: [{"image": ..., "label": ...}]}``
    with paths relative to ``dataset_dir``; ``label`` (a mask NIfTI in the study's geometry) is
    optional and used by the evaluation config."""
    path = Path(datalist_file)
    root = Path(dataset_dir)
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{describe_path(path)}: not a readable datalist JSON ({exc.__class__.__name__})") from exc
    items = content.get(key) if isinstance(content, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError(f"{describe_path(path)}: no '{key}' list of items in the datalist")
    resolved = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or "image" not in item:
            raise InputError(f"{describe_path(path)}: item {number} of '{key}' has no 'image'")
        entry = {name: str(root / value) if name in ("image", "label") and value else value for name, value in item.items()}
        entry.setdefault("study", study_key(Path(entry["image"]), root) if _inside(Path(entry["image"]), root)
                         else f"study-{pseudonymous_key(entry['image'])}")
        resolved.append(entry)
    return resolved


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def select_datalist(dataset_dir: str | Path, datalist_file: str | Path | None = None,
                    key: str = "testing") -> list[dict[str, Any]]:
    """The config's ``datalist``: the datalist file when one is given, else every study found."""
    if datalist_file:
        return read_datalist(datalist_file, dataset_dir, key)
    return discover_studies(dataset_dir)
