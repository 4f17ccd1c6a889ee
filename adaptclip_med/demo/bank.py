"""The one demo reference-bank builder: ``adaptclip-med demo``, ``dashboard --demo`` and the
bundle's demo config all call it, so the demo bank is built (and named) the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod
    from adaptclip_med.slice_preprocessing import SlicePreprocessing

DEMO_BANK = "demo-ct-head"


def ensure_demo_bank(scans: Sequence[Path], method: "AnomalyMethod", preprocessing: "SlicePreprocessing", banks_root: Path,
                     name: str = DEMO_BANK, rebuild: bool = False) -> Path:
    """The demo bank of the normal phantoms under ``banks_root/name``: reused when it exists and
    was built by this method with these settings, else (re)built; returns its folder."""
    from adaptclip_med.methods.identity import identity_differences
    from adaptclip_med.volume.bank_builder import build_reference_bank
    from adaptclip_med.volume.bank.reader import ReferenceBank

    folder = Path(banks_root) / name
    if not rebuild and (folder / "bank.json").is_file():
        recorded = ReferenceBank.recorded_identity(folder)
        existing = ReferenceBank.open(folder)
        same_preprocessing = existing.preprocessing() == preprocessing
        on_a_grid = existing.grid is not None  # demo banks from before physical grids are rebuilt
        if not identity_differences(recorded, method.identity()) and same_preprocessing and on_a_grid:
            return folder
    return build_reference_bank(name, list(scans), method, preprocessing, Path(banks_root))
