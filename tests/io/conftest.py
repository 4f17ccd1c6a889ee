"""Fixtures for the I/O tests: small phantom DICOM series written on the fly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from io_helpers import SHAPE, SPACING

from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series


@pytest.fixture(scope="session")
def phantom() -> tuple[np.ndarray, np.ndarray]:
    """A small head phantom with one lesion: (HU float32, mask uint8)."""
    return make_head_ct_phantom(seed=5, shape=SHAPE, lesions=1)


@pytest.fixture()
def write_series(tmp_path, phantom) -> Callable[..., Path]:
    """write_series(name, **options) -> folder with the phantom written as DICOM."""

    def _write(name: str = "study", hu: np.ndarray | None = None, **options) -> Path:
        folder = tmp_path / name
        options.setdefault("spacing", SPACING)
        write_dicom_series(phantom[0] if hu is None else hu, folder, **options)
        return folder

    return _write
