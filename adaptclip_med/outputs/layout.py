"""Every output file name of the project, in one place.

Per study (one folder per study): the probability map and mask in the source geometry (NIfTI),
for DICOM input the IHE AI Results objects (DICOM SEG, TID 1500 SR, optionally a Parametric Map
and a Key Object Selection of the top slices), the per-slice table, PNG overlays of
the top slices, the slice-score plot and ``study.json``, written LAST (its presence means the
study is complete).  Per batch run: ``worklist.csv`` and ``errors.csv``.  Per bundle run:
``summary.json`` and ``summary.csv``.  No name carries a patient identifier.

Writers (:mod:`adaptclip_med.outputs.study_writers`), batch, the bundle, the review code and the
dashboard read these names from here instead of spelling them.
"""

from __future__ import annotations

import re
from pathlib import Path


# -- per study
PROBABILITY_NIFTI = "anomaly_probability.nii.gz"
MASK_NIFTI = "anomaly_mask.nii.gz"
DICOM_SEG = "anomaly_seg.dcm"
PARAMETRIC_MAP = "anomaly_pmap.dcm"
DICOM_SR = "anomaly_sr.dcm"  # TID 1500 measurement report (Comprehensive 3D SR)
KEY_OBJECTS = "anomaly_kos.dcm"  # Key Object Selection of the top slices
SLICES_CSV = "slices.csv"
SCORE_PLOT = "score_plot.png"
STUDY_JSON = "study.json"
#: ``score --method A,B``: every method's slice-score curve on one plot (next to the per-method folders)
METHODS_SCORE_PLOT = "methods_score_plot.png"
OVERLAY_PATTERN = "overlay_top{rank}_slice{number:04d}.png"  # number: 1-based, as the viewer
OVERLAY_GLOB = "overlay_top*_slice*.png"
_OVERLAY_RE = re.compile(r"^overlay_top(\d+)_slice(\d{4,})\.png$")

#: The DICOM objects of a study a PACS can take back (batch's STOW-RS list, the node's C-STORE
#: list), in sending order: the SR after the SEG it references.
DICOM_RESULTS = (DICOM_SEG, PARAMETRIC_MAP, DICOM_SR, KEY_OBJECTS)

# -- per reviewed study (dashboard export, next to the study outputs)
REVIEWED_MASK_NIFTI = "reviewed_mask.nii.gz"
REVIEWED_SEG = "reviewed_seg.dcm"
REVIEWED_SR = "reviewed_sr.dcm"  # TID 1500 SR: the reader's decision, the reader as observer
REVIEW_REPORT_HTML = "report.html"
REVIEW_REPORT_PDF = "report.pdf"

# -- per batch run
WORKLIST_CSV = "worklist.csv"
ERRORS_CSV = "errors.csv"

# -- per bundle run
BUNDLE_SUMMARY_JSON = "summary.json"
BUNDLE_SUMMARY_CSV = "summary.csv"
BUNDLE_METRICS_JSON = "metrics.json"  # configs/evaluate.json


def overlay_name(rank: int, number: int) -> str:
    """``overlay_top{rank}_slice{number:04d}.png``: the rank-th highest-scoring slice, named by its
    1-based slice number (the viewer's "slice 7 / 16" is ``..._slice0007.png``)."""
    return OVERLAY_PATTERN.format(rank=int(rank), number=int(number))


def parse_overlay_name(name: str) -> tuple[int, int] | None:
    """(rank, 1-based slice number) of an overlay file name, None for any other name."""
    match = _OVERLAY_RE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def overlays_in(folder: Path) -> list[Path]:
    """The overlay PNGs of a study folder, by rank."""
    found = [(parse_overlay_name(p.name), p) for p in Path(folder).glob(OVERLAY_GLOB)]
    return [p for key, p in sorted((k, p) for k, p in found if k is not None)]


def dicom_results_in(folder: Path) -> list[Path]:
    """The DICOM result objects present in a finished study folder (what batch sends by STOW)."""
    return [Path(folder) / name for name in DICOM_RESULTS if (Path(folder) / name).is_file()]


#: What a study folder holds that this project wrote (the staged rewrite replaces exactly these).
STUDY_FILES = frozenset({PROBABILITY_NIFTI, MASK_NIFTI, DICOM_SEG, PARAMETRIC_MAP, DICOM_SR, KEY_OBJECTS, SLICES_CSV,
                         SCORE_PLOT, STUDY_JSON})


def is_study_output(name: str) -> bool:
    """True for a file name the study writers produce (or their temporary files): anything
    ``anomaly_*`` (also from other versions), the fixed names, overlays and ``.tmp-`` files."""
    return (name in STUDY_FILES or name.startswith("anomaly_") or name.startswith(".tmp-")
            or parse_overlay_name(name) is not None)
