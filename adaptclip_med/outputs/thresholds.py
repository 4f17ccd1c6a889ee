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
#: a study the comparability guard found not comparable with its references is neither normal nor
#: abnormal: its map compares it with anatomy it does not resemble (docs/comparability.md)
NOT_COMPARABLE_FLAG = "not comparable"
PIXEL_NAME = "pixel threshold"
SLICE_NAME = "slice score threshold"
FLAG_RULE = ("abnormal when any voxel of the anomaly map is at or above the operating threshold "
             "(the pixel threshold of the mask), else normal")


def study_flag(map_peak: float, pixel_threshold: float) -> str:
    """``abnormal`` when the map's peak reaches the operating (pixel) threshold, else ``normal``."""
    return ABNORMAL if math.isfinite(map_peak) and map_peak >= pixel_threshold else NORMAL


def result_flag(result: Any) -> tuple[str, float]:
    """(the flag, the map peak it was decided on) of a scored study.  Only the slices that count
    are read: slices the comparability guard set aside (outside the bank's coverage, out of its
    reference distribution) add nothing to the mask, so they cannot make a study abnormal; a study
    the guard found not comparable gets :data:`NOT_COMPARABLE_FLAG`."""
    import numpy as np

    verdict = getattr(result, "comparability", None)
    counted = [s.index for s in result.comparable_scored()]
    peak = float(np.max(result.probability[counted])) if counted and result.probability.size else float("nan")
    if verdict is not None and not verdict.comparable:
        return NOT_COMPARABLE_FLAG, peak
    return study_flag(peak, result.threshold), peak


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
    if flag in (ABNORMAL, NORMAL, NOT_COMPARABLE_FLAG):
        return flag
    voxels = report.get("mask_voxels")
    if isinstance(voxels, (int, float)):
        return ABNORMAL if voxels > 0 else NORMAL
    return None


def flag_line(flag: str, pixel_threshold: float, map_peak: float) -> str:
    """One line for the CLI: the flag, the operating threshold by name, the peak it was compared with."""
    return (f"{flag.upper()} at the operating {PIXEL_NAME} {pixel_threshold:.4f} "
            f"(anomaly map peak {map_peak:.4f})")
