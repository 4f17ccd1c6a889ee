"""Triage evaluation helpers (tests/volume/test_triage.py, benchmarks/triage.py): a bank of
normal phantoms built with the real builder, and which lesions a predicted mask touched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage


def write_normal_bank(root: Path, scans: int, shape: tuple[int, int, int], method, preprocessing) -> Path:
    """Normal phantoms as DICOM series, encoded into a reference bank with the real builder."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
    from adaptclip_med.volume.bank_builder import build_reference_bank

    folders = []
    for i in range(scans):
        hu, _ = make_head_ct_phantom(5000 + i, shape)
        write_dicom_series(hu, root / f"normal_{i}", spacing=(1.0, 1.0, 1.0))
        folders.append(root / f"normal_{i}")
    return build_reference_bank("normals", folders, method, preprocessing, root / "banks",
                                batch_size=16, calibration_slices=16)


def lesion_hits(truth: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(lesions touched by the mask, lesions): lesions are 3-D connected components of the truth."""
    labels, count = ndimage.label(truth)
    if count == 0:
        return 0, 0
    touched = np.unique(labels[mask & truth])
    return int((touched > 0).sum()), int(count)
