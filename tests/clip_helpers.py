"""Small helpers shared by test folders (a uniquely named module rather than ``conftest`` so an
import cannot pick up another folder's conftest)."""

from __future__ import annotations

from pathlib import Path

import torch


def save_random_clip(architecture: str, path: Path, seed: int = 0) -> Path:
    """A registered open_clip architecture with random weights saved as a state dict file (the
    tiny test backbones of AdaCLIP and WinCLIP, loaded back through the real weights path)."""
    import open_clip

    from adaptclip_med.model.backbone_source import ensure_packaged_configs_registered

    ensure_packaged_configs_registered()
    torch.manual_seed(seed)
    torch.save(open_clip.create_model(architecture, pretrained=None, load_weights=False).state_dict(), path)
    return path
