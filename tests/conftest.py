"""Fixtures every test folder shares: quiet progress and one torch thread for the session, and a
tiny random-initialised open_clip CLIP saved to a file and loaded back through the real weights
path, so tests exercise exactly what users' weights go through.  Plain helpers live in
``tests/support`` (importable by the benchmarks too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.support.tiny_models import TINY, TINY_SIZE, randomise_adapter_state, save_tiny_weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _quiet_one_thread():
    """No progress bars, and one torch thread, for the whole session (session fixtures that build
    banks and demo data included): the tiny models' ops are far too small to share, and the
    machine's other cores belong to concurrent test runs (OpenMP barriers stall under
    contention).  Tests that need progress output set ADAPTCLIP_MED_PROGRESS themselves."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return save_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny_clip.pt")


@pytest.fixture(scope="session")
def tiny_spec(tiny_weights):
    from adaptclip_med.model.backbone_source import BackboneSpec

    return BackboneSpec(architecture=TINY, weights=str(tiny_weights), offline=True)


@pytest.fixture(scope="session")
def tiny_model(tiny_spec):
    """Backbone from the saved file + untrained adapters with non-trivial BN statistics."""
    from adaptclip_med.methods.adaptclip.checkpoints import build_model

    loaded = build_model(tiny_spec, None, TINY_SIZE)
    randomise_adapter_state(loaded.model)
    return loaded.model.eval()


@pytest.fixture()
def images():
    generator = torch.Generator().manual_seed(7)
    return torch.randn(5, 3, TINY_SIZE, TINY_SIZE, generator=generator)


@pytest.fixture(scope="session")
def playwright_driver():
    """One Playwright driver for the whole test session.  The sync API runs an event loop of its
    own: a second ``sync_playwright()`` started while another is alive fails ("Sync API inside the
    asyncio loop"), and three areas (the dashboard, the login flow, the OHIF viewer) drive Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        yield playwright
