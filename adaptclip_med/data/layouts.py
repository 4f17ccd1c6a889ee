"""Layout registry: detection and reading of dataset roots.

``LAYOUTS`` maps a layout name to how to recognise it and how to read it.  New layouts (e.g.
NIfTI/DICOM volumes with label maps) plug in with :func:`register_layout` without touching the
readers here.  Detection tries layouts in registration order and takes the first that matches,
so the most specific signatures (a CSV or JSON index file) come first and the loosest (plain
class folders) last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.data.bmad import looks_like_bmad, looks_like_mvfa, read_bmad, read_mvfa
from adaptclip_med.data.generic import looks_like_generic, read_generic
from adaptclip_med.data.metajson import looks_like_meta_json, read_meta_json
from adaptclip_med.data.mvtec import looks_like_mvtec, read_mvtec
from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.data.visa import looks_like_visa, read_visa
from adaptclip_med.data.volumes import looks_like_volumes, read_volumes
from adaptclip_med.errors import InputError
from adaptclip_med.slice_preprocessing import SlicePreprocessing


@dataclass(frozen=True)
class Layout:
    looks_like: Callable[[Path], bool]
    read: Callable[..., DatasetIndex]
    #: Whether ``read`` takes ``slicing`` (window/axis): layouts of 3-D volumes are sliced the way
    #: inference slices them, and the user may override the dataset's own setting.
    volumetric: bool = False


LAYOUTS: dict[str, Layout] = {
    "visa": Layout(looks_like_visa, read_visa),
    "meta_json": Layout(looks_like_meta_json, read_meta_json),
    "mvfa": Layout(looks_like_mvfa, read_mvfa),
    "bmad": Layout(looks_like_bmad, read_bmad),
    "mvtec": Layout(looks_like_mvtec, read_mvtec),
    "volumes": Layout(looks_like_volumes, read_volumes, volumetric=True),
    "generic": Layout(looks_like_generic, read_generic),
}


def register_layout(name: str, layout: Layout, before: str | None = "generic") -> None:
    """Add (or replace) a layout; by default it is tried before the catch-all generic layout."""
    entries = [(key, value) for key, value in LAYOUTS.items() if key != name]
    position = next((i for i, (key, _) in enumerate(entries) if key == before), len(entries))
    entries.insert(position, (name, layout))
    LAYOUTS.clear()
    LAYOUTS.update(entries)


def _require_folder(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root.name or root}: dataset root is not a folder")
    return root


def detect_layout(root: Path) -> str:
    root = _require_folder(root)
    for name, layout in LAYOUTS.items():
        if layout.looks_like(root):
            return name
    raise InputError(f"{root.name}: cannot tell the dataset layout; expected one of {', '.join(LAYOUTS)}")


def read_dataset(root: Path, layout: str = "auto", slicing: SlicePreprocessing | None = None) -> DatasetIndex:
    """Read a dataset root in the given (or detected) layout; at least one image must be found.

    ``slicing`` (window and axis) applies to volume layouts and overrides their ``dataset.json``."""
    root = _require_folder(root)
    name = detect_layout(root) if layout == "auto" else layout
    if name not in LAYOUTS:
        raise InputError(f"unknown dataset layout {name!r}; expected auto or one of {', '.join(LAYOUTS)}")
    chosen = LAYOUTS[name]
    index = chosen.read(root, slicing) if chosen.volumetric else chosen.read(root)
    if not index.samples:
        raise InputError(f"{root.name}: no images found for the {name} layout")
    return index
