"""Batch tests share the tiny random-initialised model (no downloads)."""

from __future__ import annotations

import pytest

from tests.support.tiny_models import TINY_OPTIONS


@pytest.fixture(scope="session")
def scoring():
    from adaptclip_med.volume.options import ScoringOptions

    return ScoringOptions.build(**TINY_OPTIONS, zero_shot=True)
