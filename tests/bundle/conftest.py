"""Fixtures for the MONAI bundle tests: the demo data generated once per session, then reused by in-process and subprocess runs (which find the same reference bank
because they build the same model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_models import tiny_spec


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """Phantom studies and the tiny model's reference bank, prepared once."""
    from adaptclip_med.bundle_support import AdaptCLIPMapNetwork, DemoStudies
    from adaptclip_med.methods.adaptclip.demo_weights import DEMO_WINDOW

    root = tmp_path_factory.mktemp("bundle_demo")
    DemoStudies(root, AdaptCLIPMapNetwork(tiny_spec()), window=DEMO_WINDOW)
    return root
