"""Shared fixtures: a tiny random-initialised open_clip CLIP saved to a file and loaded back
through the real weights path, so tests exercise exactly what users' weights go through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from clip_helpers import save_random_clip  # noqa: F401 - shared with the method tests

TINY = "adaptclip-tiny-vit"
TINY_SIZE = 56


def save_tiny_weights(path: Path, seed: int = 0, fp16: bool = False, openai_keys: bool = False) -> Path:
    import open_clip

    from adaptclip_med.model.backbone_source import ensure_packaged_configs_registered

    ensure_packaged_configs_registered()
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY, pretrained=None, load_weights=False)
    state = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    if openai_keys:
        state.update(input_resolution=torch.tensor(56), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    torch.save(state, path)
    return path


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


def randomise_adapter_state(model, seed: int = 3) -> None:
    """Give every adapter parameter and BN buffer distinct values so layout mistakes show up."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.adapter_modules().items():
            for key, tensor in module.state_dict().items():
                if key.endswith("num_batches_tracked") or key in ("prefix", "suffix", "token_ids"):
                    continue
                noise = torch.randn(tensor.shape, generator=generator) * 0.1
                if key.endswith("running_var"):
                    tensor.copy_(1.0 + noise.abs())
                elif key.endswith("weight") and tensor.ndim == 1:
                    tensor.copy_(1.0 + noise)
                else:
                    tensor.copy_(noise * (3.0 if tensor.ndim > 1 else 1.0))
    model.textual.invalidate_cache()


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
