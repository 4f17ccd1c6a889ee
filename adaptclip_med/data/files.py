"""Small file-system helpers shared by the layout readers: listing images, pairing masks by
file stem, and naming files in one-line errors."""

from __future__ import annotations

from pathlib import Path

from adaptclip_med.errors import InputError
from adaptclip_med.preprocess import IMAGE_SUFFIXES
from adaptclip_med.utils.redact import describe_path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted, hidden files skipped); [] if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def images_by_stem(folder: Path) -> dict[str, Path]:
    """Masks are paired with images by file stem, whatever the extension (.png mask for a .jpg)."""
    return {p.stem: p for p in list_images(folder)}


def display_name(path: Path, root: Path) -> str:
    """Path relative to the dataset root for error messages (the absolute location is of no use
    to the reader of a one-line error), with UID-like components hashed."""
    return describe_path(path, root)


def require_file(path: Path, root: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{display_name(path, root)}: {what} listed by the dataset is missing")
    return path


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
