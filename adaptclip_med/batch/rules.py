"""Which series of a study gets scored, and why every other series was left.

A department export holds localizers, reformats, dose reports and several reconstructions per
study; scoring the wrong one wastes time and misleads the worklist.  Rules are plain data (a YAML
file) so a site can adapt them without code, and every decision carries a human reason that ends
up in ``study.json`` and ``errors.csv``.

YAML keys (all optional)::

    modalities: [CT]                 # allowed modalities; empty = any image modality
    body_parts: [HEAD, BRAIN]        # BodyPartExamined, case-insensitive; empty = any
    allow_missing_body_part: true    # series without BodyPartExamined pass the body-part rule
    description: "(?i)brain|head"    # SeriesDescription must match (regex search)
    exclude_description: "(?i)bone" # series whose description matches are left
    min_slices: 1
    planes: []                       # allowed acquisition planes (axial, coronal, sagittal, oblique)
    exclude_localizers: true         # ImageType LOCALIZER, or a description such as SCOUT, TOPOGRAM, PILOT
    exclude_derived: true            # ImageType DERIVED (reformats, MIPs)
    exclude_secondary_capture: true  # screenshots, burned-in reports
    prefer_plane: axial              # ranking: this plane first, then the thinnest slices, then most slices
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_scan import SeriesInfo
from adaptclip_med.utils.redact import describe_path

PLANES = ("axial", "coronal", "sagittal", "oblique", "unknown")
#: Scanners do not always flag localizers in ImageType; their series descriptions are telling.
LOCALIZER_DESCRIPTION = re.compile(r"(?i)\b(localizer|localiser|scout|topogram|surview|scanogram|pilot|survey)\b")


@dataclass(frozen=True)
class SeriesRules:
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    allow_missing_body_part: bool = True
    description: str | None = None
    exclude_description: str | None = None
    min_slices: int = 1
    planes: tuple[str, ...] = ()
    exclude_localizers: bool = True
    exclude_derived: bool = True
    exclude_secondary_capture: bool = True
    prefer_plane: str | None = "axial"

    def describe(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


@dataclass(frozen=True)
class SeriesDecision:
    """One series of a study and what the rules made of it (``label`` holds no identifier)."""

    series: str
    taken: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"series": self.series, "taken": self.taken, "reason": self.reason}


@dataclass
class SeriesChoice:
    chosen: SeriesInfo | None
    decisions: list[SeriesDecision] = field(default_factory=list)


def no_series_reason(decisions: list[SeriesDecision]) -> str:
    """One line for errors.csv when nothing was taken: every series and why it was left."""
    if not decisions:
        return "no image series in the study"
    return "no eligible series (" + "; ".join(f"{d.series}: {d.reason}" for d in decisions) + ")"


def load_rules(path: Path | None) -> SeriesRules:
    """Rules from a YAML file (None = defaults); unknown keys and bad values are user errors."""
    if path is None:
        return SeriesRules()
    label = describe_path(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError(f"{label}: cannot read the rules file ({exc.strerror or type(exc).__name__})") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{label}: not valid YAML ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{label}: the rules file must be a mapping of rule names to values")
    return rules_from_mapping(data, label)


def rules_from_mapping(data: dict[str, Any], label: str = "rules") -> SeriesRules:
    known = {f.name: f for f in fields(SeriesRules)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{label}: unknown rule(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(SeriesRules(), key)
        if isinstance(default, tuple):
            items = [value] if isinstance(value, str) else list(value or [])
            values[key] = tuple(str(v).strip().upper() if key != "planes" else str(v).strip().lower() for v in items)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(f"{label}: rule '{key}' must be true or false")
            values[key] = value
        elif key == "min_slices":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{label}: rule 'min_slices' must be a positive integer")
            values[key] = value
        else:
            values[key] = None if value in (None, "") else str(value)
    rules = SeriesRules(**values)
    for key in ("description", "exclude_description"):
        pattern = getattr(rules, key)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError(f"{label}: rule '{key}' is not a valid regular expression ({exc.msg})") from exc
    for plane in (*rules.planes, *([rules.prefer_plane] if rules.prefer_plane else [])):
        if plane not in PLANES:
            raise InputError(f"{label}: plane '{plane}' is not one of {', '.join(PLANES)}")
    return rules


def _why_left(series: SeriesInfo, rules: SeriesRules) -> str | None:
    """The first rule the series fails, or None if it is eligible."""
    if series.kind != "image":
        skipped = {s.reason for s in series.skipped}
        return f"no scorable image ({'; '.join(sorted(skipped)) or series.kind})"
    if rules.modalities and series.modality.upper() not in rules.modalities:
        return f"modality {series.modality or 'unknown'} not in {'/'.join(rules.modalities)}"
    if rules.body_parts:
        part = series.body_part.upper()
        if not part and not rules.allow_missing_body_part:
            return "body part not recorded"
        if part and part not in rules.body_parts:
            return f"body part {part} not in {'/'.join(rules.body_parts)}"
    if rules.exclude_localizers and series.is_localizer:
        return "localizer/scout"
    if rules.exclude_localizers and LOCALIZER_DESCRIPTION.search(series.description):
        return "localizer/scout (by description)"
    if rules.exclude_secondary_capture and series.is_secondary_capture:
        return "secondary capture"
    if rules.exclude_derived and series.is_derived:
        return "derived images (reformat/MIP)"
    if rules.description and not re.search(rules.description, series.description):
        return "description does not match the required pattern"
    if rules.exclude_description and re.search(rules.exclude_description, series.description):
        return "description matches the excluded pattern"
    if series.num_slices < rules.min_slices:
        return f"{series.num_slices} slices < minimum {rules.min_slices}"
    if rules.planes and series.orientation not in rules.planes:
        return f"{series.orientation} plane not in {'/'.join(rules.planes)}"
    return None


def _preference(series: SeriesInfo, rules: SeriesRules) -> tuple:
    thickness = series.slice_thickness if series.slice_thickness else math.inf
    number = series.series_number if series.series_number is not None else 1 << 30
    return (rules.prefer_plane is not None and series.orientation != rules.prefer_plane, thickness,
            -series.num_slices, number, series.series_key)


def _ranking_reason(best: SeriesInfo, rules: SeriesRules, eligible: int) -> str:
    if eligible == 1:
        return "only eligible series"
    plane = f"{rules.prefer_plane} " if rules.prefer_plane and best.orientation == rules.prefer_plane else ""
    return f"{plane}series with the thinnest slices, then most slices, of {eligible} eligible"


def select_series(series: list[SeriesInfo], rules: SeriesRules) -> SeriesChoice:
    """Pick one series of ONE study; every series gets a decision with its reason."""
    eligible: list[SeriesInfo] = []
    left: dict[str, str] = {}
    for info in series:
        reason = _why_left(info, rules)
        if reason is None:
            eligible.append(info)
        else:
            left[info.series_key] = reason
    ranked = sorted(eligible, key=lambda s: _preference(s, rules))
    chosen = ranked[0] if ranked else None
    decisions = []
    for info in series:
        if chosen is not None and info is chosen:
            decisions.append(SeriesDecision(info.label, True, _ranking_reason(chosen, rules, len(ranked))))
        elif info.series_key in left:
            decisions.append(SeriesDecision(info.label, False, left[info.series_key]))
        else:
            decisions.append(SeriesDecision(info.label, False, "eligible but ranked below the chosen series"))
    return SeriesChoice(chosen, decisions)
