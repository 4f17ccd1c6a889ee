"""Display of one slice: window/level, anomaly overlay, zoom.

The viewer windows the stored physical values (HU for CT) itself instead of reusing the network's
preprocessing, because a reader changes level/width constantly while the network input must stay
fixed.  Images are upscaled to a fixed display size so small matrices (and zoomed crops) are
readable in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

DISPLAY_SIZE = 512
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Window:
    level: float
    width: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Values mapped to [0, 1]: level - width/2 -> 0, level + width/2 -> 1."""
        from adaptclip_med.intensity import apply_window

        return apply_window(values, self.level, max(self.width, 1e-6))


def percentile_window(volume: np.ndarray) -> Window:
    """The default for modalities without calibrated units (MR, PET): robust per-volume range."""
    finite = volume[np.isfinite(volume)]
    if finite.size == 0:
        return Window(0.0, 1.0)
    low, high = np.percentile(finite, PERCENTILES)
    return Window(float((low + high) / 2.0), float(max(high - low, 1e-3)))


def preset_windows(modality: str) -> dict[str, Window]:
    """CT presets (level/width in HU) for CT; none for other modalities."""
    from adaptclip_med.intensity import CT_WINDOWS

    if modality.upper() != "CT":
        return {}
    return {name: Window(float(level), float(width)) for name, (level, width) in CT_WINDOWS.items()}


def overlay_slice(slice01: np.ndarray, probability: np.ndarray | None, threshold: float, alpha: float,
                  gain: float = 1.0) -> np.ndarray:
    """RGB uint8 of a windowed slice with the anomaly map blended in and the ``threshold`` outline.

    ``gain`` > 1 stretches a weak map for display (e.g. to the study maximum); the threshold is
    scaled with it, so the outline still marks exactly the pixels at or above ``threshold``."""
    from adaptclip_med.outputs.overlay import render_overlay

    if probability is None or alpha <= 0.0:
        grey = (np.clip(slice01, 0.0, 1.0) * 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return render_overlay(slice01, probability * gain, threshold * gain, alpha)


def zoom_box(shape: tuple[int, int], zoom: float, centre: tuple[float, float] | None = None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop that a ``zoom``x view around ``centre`` shows, kept inside the image."""
    height, width = shape
    zoom = max(1.0, float(zoom))
    crop_h, crop_w = max(1, round(height / zoom)), max(1, round(width / zoom))
    cy, cx = centre if centre is not None else (height / 2.0, width / 2.0)
    top = int(np.clip(round(cy - crop_h / 2.0), 0, height - crop_h))
    left = int(np.clip(round(cx - crop_w / 2.0), 0, width - crop_w))
    return top, left, crop_h, crop_w


def zoomed(rgb: np.ndarray, zoom: float, centre: tuple[float, float] | None = None,
           size: int = DISPLAY_SIZE, spacing_yx: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Crop for the zoom and resize for display, correcting non-square pixels from ``spacing_yx``."""
    top, left, h, w = zoom_box(rgb.shape[:2], zoom, centre)
    crop = rgb[top:top + h, left:left + w]
    aspect = (h * spacing_yx[0]) / max(w * spacing_yx[1], 1e-6)
    out_w = size if aspect <= 1 else max(1, round(size / aspect))
    out_h = max(1, round(out_w * aspect)) if aspect <= 1 else size
    return np.asarray(Image.fromarray(crop).resize((out_w, out_h), Image.Resampling.BICUBIC if zoom > 1 else Image.Resampling.BILINEAR))


def grey_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 grey image (e.g. a bank thumbnail) as display-sized RGB."""
    grey = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    return np.repeat(np.asarray(grey)[..., None], 3, axis=-1)
