"""How a study's slices become network input: window, slice axis, background detection.

The same :class:`SlicePreprocessing` is used to build a reference bank and to score a study, and
it is part of the bank's key: references windowed differently from the query would make the 1-NN
comparison meaningless.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from adaptclip_med.errors import InputError


def parse_window(text: str | None) -> str | tuple[float, float] | None:
    """'brain' (preset), '40,80' (level,width in HU), 'percentile'/None (per-volume percentiles)."""
    from adaptclip_med.intensity import CT_WINDOWS

    if text is None or text in ("", "percentile", "auto"):
        return None
    if text in CT_WINDOWS:
        return text
    parts = text.split(",")
    if len(parts) == 2:
        try:
            level, width = float(parts[0]), float(parts[1])
        except ValueError:
            pass
        else:
            if width <= 0:
                raise InputError(f"window '{text}': width must be positive")
            return level, width
    raise InputError(f"window '{text}' is not a preset ({', '.join(CT_WINDOWS)}), 'LEVEL,WIDTH' or 'percentile'")


@dataclass(frozen=True)
class SlicePreprocessing:
    window: str | tuple[float, float] | None = None
    axis: str = "axial"

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class PreparedVolume:
    """Windowed slices in [0, 1] (Z, Y, X) and which slices hold no body (skipped, not scored)."""

    slices01: np.ndarray
    background: np.ndarray  # (Z,) bool
    relative_position: np.ndarray  # (Z,) position within the body extent, 0..1 (nan for background)


def prepare_volume(volume, preprocessing: SlicePreprocessing | None, slices01: np.ndarray | None = None,
                   window_bank: str | None = None) -> PreparedVolume:
    """Windowed slices plus air-only slice flags and body-relative positions.  ``slices01`` given
    (e.g. by the bundle's MONAI transforms) is used instead of windowing here, so every entry
    point detects background the same way, on the physical values.  ``window_bank``: the bank
    whose window this is (named in warnings), None when the user chose it."""
    from adaptclip_med.intensity import background_slices, normalise_volume

    if slices01 is None:
        slices01 = normalise_volume(volume, preprocessing.window, bank=window_bank)
    slices01 = np.asarray(slices01, dtype=np.float32)
    background = background_slices(volume)
    return PreparedVolume(slices01, background, relative_positions(background))


def relative_positions(background: np.ndarray) -> np.ndarray:
    """Position of each body slice between the first (0) and last (1) body slice.

    Using the body extent rather than the raw slice index makes scans with different fields of
    view or slice counts comparable for anatomical matching."""
    body = np.flatnonzero(~background)
    rel = np.full(background.shape[0], np.nan, dtype=np.float64)
    if body.size == 0:
        return rel
    first, last = body[0], body[-1]
    span = max(last - first, 1)
    rel[body] = (body - first) / span
    return rel
