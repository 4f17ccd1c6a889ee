"""The demo's studies on disk: one head CT with three lesions, normal heads, the label map.

Seeds are kept apart so no image is used twice: the study with lesions uses ``seed``, the
normal heads ``1000 + seed + i`` (references, then the held-out normal study), and the
auxiliary training data (:mod:`adaptclip_med.demo.body`) ``5000..``.  Series are written as
real DICOM with the slice thickness, spacing and pixel spacing of :mod:`adaptclip_med.demo.ct_head`
in the headers.  SYNTHETIC, NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptclip_med.demo.ct_head import PIXEL_MM, SLICE_MM, demo_lesions, make_ct_head
from adaptclip_med.demo.phantom import write_dicom_series

NORMAL_SEED_OFFSET = 1000
DEMO_SLICES = 16
DEMO_SIZE = 256


@dataclass
class DemoStudies:
    """Where :func:`make_ct_demo_dataset` put things."""

    study_dir: Path
    normal_dirs: list[Path]
    ground_truth_nifti: Path
    labels: np.ndarray  # (Z, Y, X) uint8, the study volume's own array order


def make_ct_demo_dataset(out_dir: str | Path, seed: int = 0, normals: int = 4, slices: int = DEMO_SLICES,
                         size: int = DEMO_SIZE, truth_path: Path | None = None) -> DemoStudies:
    """Write the study with lesions, ``normals`` normal heads and the label map (NIfTI, values =
    lesion kind: 1 hyperdense, 2 hypodense, 3 mass) in the study's geometry, to ``truth_path``
    (default ``out_dir/ground_truth_labels.nii.gz``; the demo keeps it outside the data folder so
    ``batch`` on that folder sees studies only)."""
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.outputs.nifti import write_nifti

    out_dir = Path(out_dir)
    spacing = (SLICE_MM, PIXEL_MM, PIXEL_MM)
    hu, labels = make_ct_head(seed, slices, size, lesions=demo_lesions(seed, slices))
    study_dir = out_dir / "study"
    write_dicom_series(hu, study_dir, spacing=spacing, series_description="SYNTHETIC PHANTOM HEAD (LESIONS)",
                       study_description="SYNTHETIC HEAD CT - NO DIAGNOSTIC VALUE")
    normal_dirs = []
    for index in range(normals):
        normal_hu, _ = make_ct_head(NORMAL_SEED_OFFSET + seed + index, slices, size)
        folder = out_dir / "normals" / f"normal_{index + 1:02d}"
        write_dicom_series(normal_hu, folder, spacing=spacing, series_description="SYNTHETIC PHANTOM HEAD (NORMAL)",
                           study_description="SYNTHETIC HEAD CT - NO DIAGNOSTIC VALUE",
                           patient_name=f"PHANTOM^NORMAL{index + 1}", patient_id=f"PHANTOM-N-{index + 1:04d}")
        normal_dirs.append(folder)
    volume, _ = load_study(study_dir)
    truth = write_nifti(labels, volume, truth_path or out_dir / "ground_truth_labels.nii.gz", dtype=np.uint8)
    return DemoStudies(study_dir, normal_dirs, truth, labels)
