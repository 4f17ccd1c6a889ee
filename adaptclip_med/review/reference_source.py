"""The normal series a bank scan was built from, reopened for the linked reference viewer.

The bank stores the method's memory rows and 128-pixel thumbnails, not the reference pixels; what
the reader should see beside the study is the full-resolution slice the model compared with.
``sources.json`` (written when the bank is built) records each scan's local path and a voxel
fingerprint, so the series is read again when it is still there, under the allowed roots, and
unchanged.  Otherwise the reason is returned in plain words (never the path: folder names are
often patient names) and the viewer falls back to the thumbnails, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.volume.bank_builder import voxel_fingerprint
from adaptclip_med.volume.bank.reader import ReferenceBank


@dataclass(frozen=True)
class ReferenceSeries:
    """Either the reopened volume (``volume`` set) or why it could not be used (``reason``)."""

    volume: object | None  # io Volume, canonical (Z, Y, X) in the series' own units
    reason: str = ""


def open_reference_series(bank: ReferenceBank, scan: int, roots: AllowedRoots) -> ReferenceSeries:
    """Normal scan ``scan`` of ``bank`` read from the path the bank recorded, if it is still the same series."""
    from adaptclip_med.errors import AdaptClipError
    from adaptclip_med.io.loader import load_study

    record = bank.source_record(scan)
    if record is None:
        return ReferenceSeries(None, "the bank records no source series (built before sources were kept, or shared without them)")
    path = str(record.get("path") or "")
    if not roots.contains(path):
        return ReferenceSeries(None, "its source series is not under the data roots")
    try:
        checked = roots.check(path)
        if not checked.exists():
            return ReferenceSeries(None, "its source series is no longer at the recorded location")
        volume, _ = load_study(checked, axis=str(record.get("axis") or "axial"))
    except (AdaptClipError, OSError, ValueError):
        return ReferenceSeries(None, "its source series can no longer be read")
    if int(volume.array.shape[0]) != int(record.get("num_slices", -1)) or \
            voxel_fingerprint(volume.array) != record.get("fingerprint"):
        return ReferenceSeries(None, "its source series changed since the bank was built")
    return ReferenceSeries(volume)
