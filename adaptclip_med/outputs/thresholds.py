"""The thresholds a study is read with, each named for what it is, and the study's normal/abnormal flag.

Two different numbers were both called "threshold": the PIXEL threshold (a map value: voxels at or
above it form the mask, the outline and the findings) and the SLICE SCORE threshold (a slice score:
the highest slice score the bank's leave-one-scan-out calibration saw on normal scans).  A slice
score must never be read against the pixel threshold, so every output names which one it shows.

The study flag is decided at the OPERATING threshold, which is the pixel threshold the mask uses:
a study is "abnormal" when any voxel of its anomaly map reaches it (the outline is then non-empty
and the findings list has at least one region), else "normal".  One rule, so the worklist flag,
study.json, worklist.csv, the CLI line and the outline a reader sees never disagree.
"""

from __future__ import annotations

import math
from typing import Any

ABNORMAL = "abnormal"
NORMAL = "normal"
PIXEL_NAME = "pixel threshold"
SLICE_NAME = "slice score threshold"
FLAG_RULE = ("abnormal when any voxel of the anomaly map is at or above the operating threshold "
             "(the pixel threshold of the mask), else normal")


def study_flag(map_peak: float, pixel_threshold: float) -> str:
    """``abnormal`` when the map's peak reaches the operating (pixel) threshold, else ``normal``."""
    return ABNORMAL if math.isfinite(map_peak) and map_peak >= pixel_threshold else NORMAL


def slice_score_threshold(calibration: dict[str, Any] | None) -> float | None:
    """The highest normal slice score of the bank's calibration (None without one)."""
    value = (calibration or {}).get("normal_slice_score_max")
    return None if value is None else float(value)


def thresholds_report(pixel_threshold: float, pixel_source: str, calibration: dict[str, Any] | None) -> dict[str, Any]:
    """study.json's ``thresholds``: each threshold with what it applies to and where it came from."""
    report: dict[str, Any] = {
        "pixel": {"value": float(pixel_threshold), "source": pixel_source, "operating": True,
                  "applies_to": "anomaly map values: mask, outline, findings and the study flag"}}
    slice_value = slice_score_threshold(calibration)
    if slice_value is not None:
        report["slice_score"] = {"value": slice_value, "operating": False,
                                 "source": "highest slice score on the bank's normal scans (leave-one-scan-out)",
                                 "applies_to": "slice scores (score curve, viewer's slice score)"}
    return report


def flag_of(report: dict[str, Any]) -> str | None:
    """The flag of a study.json (older files: from its mask voxel count); None when unknown."""
    flag = (report.get("study_flag") or {}).get("flag") if isinstance(report.get("study_flag"), dict) else None
    if flag in (ABNORMAL, NORMAL):
        return flag
    voxels = report.get("mask_voxels")
    if isinstance(voxels, (int, float)):
        return ABNORMAL if voxels > 0 else NORMAL
    return None


def flag_line(flag: str, pixel_threshold: float, map_peak: float) -> str:
    """One line for the CLI: the flag, the operating threshold by name, the peak it was compared with."""
    return (f"{flag.upper()} at the operating {PIXEL_NAME} {pixel_threshold:.4f} "
            f"(anomaly map peak {map_peak:.4f})")
