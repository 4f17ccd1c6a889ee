"""Decoding DICOM pixel data into grey frames, with actionable errors for missing decoders.

Compressed transfer syntaxes need optional plugins; pydicom's own error lists internals.  Users
need one line saying which compression the file uses and what to install.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

from adaptclip_med.errors import InputError

_PACKAGES: dict[str, str] = {
    **dict.fromkeys((JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1),
                    "pylibjpeg pylibjpeg-libjpeg"),
    **dict.fromkeys((JPEGLSLossless, JPEGLSNearLossless), "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)"),
    **dict.fromkeys((JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K),
                    "pylibjpeg pylibjpeg-openjpeg"),
}


def decoder_hint(syntax: UID) -> str:
    """The pip packages that decode ``syntax`` (python-gdcm covers the rest)."""
    return _PACKAGES.get(str(syntax), "python-gdcm")


def _check_decoder(ds: Dataset, label: str) -> None:
    syntax = ds.file_meta.TransferSyntaxUID if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) else None
    if syntax is None or not syntax.is_compressed:
        return
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise InputError(f"{label}: no decoder for '{syntax.name}' pixel data; install it with "
                         f"`pip install {decoder_hint(syntax)}`")


def decode_grey_frames(ds: Dataset, label: str) -> np.ndarray:
    """Stored pixel values as float32 (frames, rows, cols); colour images become luminance.

    Rescale is NOT applied here (it can differ per frame)."""
    _check_decoder(ds, label)
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # decoders raise a variety of types for corrupt data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = f" ({syntax.name})" if syntax is not None else ""
        raise InputError(f"{label}: pixel data{name} cannot be decoded ({type(exc).__name__})") from exc
    pixels = np.asarray(pixels)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples > 1:
        if pixels.ndim == 3:
            pixels = pixels[None]
        rgb = pixels[..., :3].astype(np.float32)
        grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.ascontiguousarray(grey, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[None]
    return pixels.astype(np.float32)
