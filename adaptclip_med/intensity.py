"""Physical values -> [0, 1] grey levels the network sees, and air-only slice detection.

CT is read through a window (level/width in HU) chosen by the user, because a fixed window
decides which findings are visible (a bleed disappears in a lung window).  Without an explicit
window every modality, CT included, is scaled by per-volume percentiles: no anatomy is assumed.
"""

from __future__ import annotations

import logging

import numpy as np

from adaptclip_med.errors import InputError

log = logging.getLogger(__name__)

#: (level, width) in HU.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40, 80),
    "subdural": (80, 200),
    "stroke": (40, 40),
    "bone": (600, 2800),
    "lung": (-600, 1500),
    "mediastinum": (50, 350),
    "abdomen": (50, 400),
    "soft_tissue": (50, 400),
    "liver": (30, 150),
}

#: CT voxels above this HU value count as body (fat is about -100, air -1000, lung about -800).
CT_BODY_HU = -500.0
#: A slice with less than this fraction of body voxels is background (air, table, noise).
MIN_BODY_FRACTION = 0.01
#: Non-CT body threshold, as a fraction of a high intensity percentile (see is_background_slice).
RELATIVE_BODY_THRESHOLD = 0.1


def apply_window(array: np.ndarray, level: float, width: float) -> np.ndarray:
    """Linear map of [level - width/2, level + width/2] to [0, 1], clipped; float32."""
    if width <= 0:
        raise InputError(f"window width must be positive, got {width}")
    low = float(level) - float(width) / 2.0
    out = (np.asarray(array, dtype=np.float32) - np.float32(low)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def percentile_scale(array: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    """Map the ``lo``-``hi`` percentile range of the whole array to [0, 1], clipped; float32.

    Computed once per volume (not per slice) so that slices stay comparable.  A constant array
    maps to zeros."""
    data = np.asarray(array, dtype=np.float32)
    low, high = np.percentile(data, [lo, hi])
    if not high > low:
        return np.zeros_like(data, dtype=np.float32)
    out = (data - np.float32(low)) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def resolve_window(window: str | tuple[float, float] | None) -> tuple[float, float] | None:
    """A preset name or (level, width) pair as (level, width); None stays None (percentiles)."""
    if window is None:
        return None
    if isinstance(window, str):
        if window not in CT_WINDOWS:
            raise InputError(f"unknown window '{window}' (presets: {', '.join(CT_WINDOWS)})")
        return CT_WINDOWS[window]
    level, width = (float(v) for v in window)
    return level, width


def normalise_array(array: np.ndarray, window: str | tuple[float, float] | None) -> np.ndarray:
    """[0, 1] float32 from physical values: the window when given, else per-array percentiles."""
    resolved = resolve_window(window)
    return percentile_scale(array) if resolved is None else apply_window(array, *resolved)


def non_hu_window_warning(window: str | tuple[float, float], modality: str, bank: str | None = None) -> str:
    """The warning for a CT window applied to non-HU values, naming where the window came from
    and the fix that applies there: the user's ``--window`` can be omitted, but a bank's window
    is the bank's (it was built with it), so the fix is a bank of this modality."""
    shown = window if isinstance(window, str) else f"{window[0]:g},{window[1]:g}"
    if bank is None:
        return (f"CT window {shown} (from --window) applied to a volume of modality {modality}, whose values are not "
                "HU; omit --window for percentile scaling")
    return (f"CT window {shown} (from reference bank '{bank}', which was built with it) applied to a volume of "
            f"modality {modality}, whose values are not HU; score {modality} studies against a bank built from "
            f"{modality} references, or without --references (zero-shot, no --window)")


def normalise_volume(volume, window: str | tuple[float, float] | None, bank: str | None = None) -> np.ndarray:
    """[0, 1] float32 slices of a :class:`~adaptclip_med.io.volume.Volume`.

    A window (preset or (level, width) in the volume's units) is applied as given, whatever the
    modality, since the user asked for it; ``None`` scales by the volume's 0.5/99.5 percentiles.
    A window on a non-CT volume is logged as a warning: its values are not HU, so a CT preset
    usually saturates the whole image (a batch mixing modalities is the typical cause).  ``bank``
    names the reference bank the window came from (None: the user's ``--window``)."""
    modality = str(getattr(volume, "modality", "") or "")
    if window is not None and modality.upper() != "CT":
        log.warning("%s", non_hu_window_warning(window, modality or "unknown", bank))
    return normalise_array(volume.array, window)


def body_mask_fraction(slice01: np.ndarray, threshold: float = 0.05) -> float:
    """Fraction of pixels of a [0, 1] slice brighter than ``threshold`` (a crude body mask)."""
    data = np.asarray(slice01)
    return float(np.count_nonzero(data > threshold)) / max(data.size, 1)


def is_background_slice(raw_slice: np.ndarray, modality: str, body_threshold: float | None = None) -> bool:
    """True for slices that hold (almost) no body, which are skipped rather than scored.

    * CT: fewer than 1 % of voxels above -500 HU.
    * Other modalities: fewer than 1 % of voxels above ``body_threshold``.  Pass a volume-level
      threshold (see :func:`body_threshold`) for reliable results: a slice on its own cannot tell
      air noise from tissue.  Without one, the slice's own 99.5th percentile sets it (10 % of
      it), so only constant or near-empty slices count as background.
    A constant slice is always background.
    """
    data = np.asarray(raw_slice, dtype=np.float32)
    if data.size == 0 or float(data.max()) == float(data.min()):
        return True
    if modality.upper() == "CT":
        threshold = CT_BODY_HU
    elif body_threshold is not None:
        threshold = body_threshold
    else:
        low, high = np.percentile(data, [0.5, 99.5])
        threshold = low + RELATIVE_BODY_THRESHOLD * (high - low)
    return float(np.count_nonzero(data > threshold)) / data.size < MIN_BODY_FRACTION


def body_threshold(volume_array: np.ndarray) -> float:
    """Volume-level body threshold for non-CT data: 10 % of the way from the 0.5th to the 99.5th
    percentile of the whole volume (air noise sits far below tissue in MR magnitude images)."""
    low, high = np.percentile(np.asarray(volume_array, dtype=np.float32), [0.5, 99.5])
    return float(low + RELATIVE_BODY_THRESHOLD * (high - low))


def background_slices(volume) -> np.ndarray:
    """(Z,) bool: :func:`is_background_slice` for every slice, with a volume-level threshold for
    non-CT modalities."""
    array = volume.array
    threshold = None if volume.modality.upper() == "CT" else body_threshold(array)
    return np.array([is_background_slice(s, volume.modality, threshold) for s in array], dtype=bool)
