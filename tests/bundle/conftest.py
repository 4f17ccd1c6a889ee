"""Fixtures for the MONAI bundle tests: light CPU use, and the demo data generated once per
session, then reused by in-process and subprocess runs (which find the same reference bank
because they build the same model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from bundle_helpers import tiny_spec


@pytest.fixture(autouse=True)
def _quiet_and_light(monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """Phantom studies and the tiny model's reference bank, prepared once."""
    from adaptclip_med.bundle_support import AdaptCLIPMapNetwork, DemoStudies
    from adaptclip_med.demo.model import DEMO_WINDOW

    root = tmp_path_factory.mktemp("bundle_demo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("ADAPTCLIP_MED_PROGRESS", "0")
    DemoStudies(root, AdaptCLIPMapNetwork(tiny_spec()), window=DEMO_WINDOW)
    torch.set_num_threads(threads)
    return root
