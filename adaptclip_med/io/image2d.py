"""PNG/JPEG/TIFF/BMP reader: one grey slice, for 2-D datasets (e.g. head CT slices exported as images).

Colour images become luminance; 16-bit and float images keep their values.  Multi-page TIFFs use
their first page.  The source layout is the image itself, (rows, columns), with a 1 mm grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from adaptclip_med.errors import InputError
from adaptclip_med.io.geometry import check_axis
from adaptclip_med.io.volume import Volume, volume_from_source
from adaptclip_med.utils.redact import describe_path

#: Source layout (row, column, slice): rows point posterior (down the screen), columns to the
#: patient's left, the slice axis up, which is exactly the axial display convention, so the
#: canonical slice is the image unchanged.
_DISPLAY_AFFINE = np.array([[0.0, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def _grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return np.asarray(image, dtype=np.float32)
    if image.mode not in ("L", "1"):
        image = image.convert("L")
    return np.asarray(image, dtype=np.float32)


def load_image2d(path: str | Path, axis: str = "axial") -> Volume:
    """Read a 2-D image as a one-slice :class:`Volume` (modality 'OT').

    ``axis`` is accepted for a uniform reader interface; a single image is its own slice."""
    check_axis(axis)
    path = Path(path)
    label = describe_path(path)
    try:
        with Image.open(path) as image:
            image.seek(0)
            pixels = _grey(image)
    except FileNotFoundError as exc:
        raise InputError(f"{label}: no such file") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"{label}: not a readable image ({type(exc).__name__})") from exc
    if pixels.ndim != 2 or pixels.size == 0:
        raise InputError(f"{label}: expected a 2-D image, got shape {pixels.shape}")
    return volume_from_source(pixels[..., None], _DISPLAY_AFFINE, "axial", modality="OT", source_kind="image2d",
                                source_label=label, meta={"image_size": [int(pixels.shape[0]), int(pixels.shape[1])]},
                                source_shape=pixels.shape)
