"""Shared CLIP backbone weights on this machine: what is present, and fetching them (for users online).

Backbone weights are open_clip's business (hub cache).  A method's own trained weights (released
adapters, prompts) are declared by the method (``methods/NAME/catalog.py``), which reuses
:class:`WeightsStatus` for its rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.model.known_weights import KNOWN_BACKBONES


@dataclass(frozen=True)
class WeightsStatus:
    kind: str
    name: str
    path: Path | None

    @property
    def present(self) -> bool:
        return self.path is not None


def _cached_backbone(known, cache_dir: str | None) -> Path | None:
    """The already-downloaded file of a known backbone (hub cache or open_clip's URL cache), found
    without open_clip: ``weights status`` must answer at once."""
    from huggingface_hub import try_to_load_from_cache

    repo_id, filename = os.path.split(known.hf_hub)
    for name in [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    candidate = (Path(cache_dir) if cache_dir else Path.home() / ".cache" / "clip") / os.path.basename(known.url)
    return candidate if candidate.is_file() else None


def backbone_status(cache_dir: str | None = None) -> list[WeightsStatus]:
    return [WeightsStatus("backbone", f"{k.architecture} / {k.tag}", _cached_backbone(k, cache_dir)) for k in KNOWN_BACKBONES]


def fetch_backbone(name: str, tag: str, cache_dir: str | None = None) -> Path:
    from adaptclip_med.model.backbone_source import pretrained_weights_file, resolve_architecture

    resolve_architecture(name)
    return pretrained_weights_file(name, tag, cache_dir, offline=False)
