"""Batch tests share the tiny random-initialised model (no downloads)."""

from __future__ import annotations

import pytest

from tests.support.tiny_models import TINY_OPTIONS


@pytest.fixture(scope="session")
def scoring():
    from adaptclip_med.volume.options import scoring_from_flat

    return scoring_from_flat({**TINY_OPTIONS, "zero_shot": True})  # the flat record the node's [scoring] table holds
