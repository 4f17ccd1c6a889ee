"""Batch tests share the tiny random-initialised model (no downloads) and run without progress bars."""

from __future__ import annotations

import pytest
import torch

from batch_factory import TINY_OPTIONS


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def scoring():
    from adaptclip_med.volume.options import scoring_from_flat

    return scoring_from_flat({**TINY_OPTIONS, "zero_shot": True})  # the flat record the node's [scoring] table holds
