"""The on-disk format of a reference bank: file names, format tags and the identity key.

A bank folder holds ``bank.json`` (identity key, preprocessing, per-scan slice positions,
calibration) and one ``scan_NN.safetensors`` per normal scan with, for every body slice, the
method's memory rows (float rows in the method's ``bank_storage_dtype``), the normalised global
token (for retrieval matching) and a small thumbnail (for side-by-side review).

``sources.json`` records where each normal scan was read from (local path + a fingerprint of its
voxels), so the review viewer can show the full-resolution slice the model compared with.  It is
kept apart from ``bank.json`` because folder names are often patient names: it is never shown,
never logged, and deleting it makes the bank shareable (the viewer then falls back to thumbnails).

``bank.json`` also records what the comparability guard needs (docs/comparability.md): each
scan's modality and body extent along the slice axis in mm (its coverage), and under
``comparability.distribution`` the leave-one-scan-out bound of the per-slice reference distance
(``volume/distribution_check.py``).

The key covers the method identity (backbone identity + fingerprint, adapters, image size, tapped
layers), the preprocessing and the physical grid; a bank whose key differs from the current
model's is refused with a message telling the user to rebuild it.  Kept free of torch so that
listing banks stays fast.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod
    from adaptclip_med.volume.physical_grid import PhysicalGrid
    from adaptclip_med.slice_preprocessing import SlicePreprocessing

BANK_JSON = "bank.json"
BANK_FORMAT = "adaptclip-med/reference-bank"
#: 2: keyed by the method identity (method contract); rows are the method's memory rows.
BANK_VERSION = 2
THUMBNAIL_SIZE = 128
SOURCES_JSON = "sources.json"
SOURCES_FORMAT = "adaptclip-med/reference-bank-sources"


def bank_key(method: "AnomalyMethod | dict[str, Any]", preprocessing: "SlicePreprocessing | dict[str, Any]",
             grid: "PhysicalGrid | None" = None) -> str:
    """Everything that changes the stored features or the calibration, hashed (the physical grid
    only when there is one, so keys of banks without a grid are unchanged)."""
    identity = method if isinstance(method, dict) else method.identity()
    described = preprocessing if isinstance(preprocessing, dict) else preprocessing.describe()
    payload: dict[str, Any] = {"model": identity, "preprocessing": described, "format": BANK_VERSION}
    if grid is not None:
        payload["grid"] = grid.describe()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
