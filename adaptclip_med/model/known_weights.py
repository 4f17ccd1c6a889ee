"""The CLIP backbones the project knows by name, as plain data (no torch, no open_clip), so
``weights status`` answers at once.  ``tests/model/test_known_weights.py`` checks the backbone
entries against open_clip's own pretrained registry, so a drift in open_clip shows up in CI.  A
method's own trained weights are declared in its folder (``methods/NAME/catalog.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownBackbone:
    architecture: str
    tag: str
    hf_hub: str  # open_clip's hf_hub entry ("repo/" or "repo/filename")
    url: str  # open_clip's direct URL (cached under ~/.cache/clip by name)


KNOWN_BACKBONES: tuple[KnownBackbone, ...] = (
    KnownBackbone("ViT-L-14-336", "openai", "timm/vit_large_patch14_clip_336.openai/",
                  "https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt"),
    KnownBackbone("ViT-B-16-plus-240", "laion400m_e31", "timm/vit_base_patch16_plus_clip_240.laion400m_e31/",
                  "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/vit_b_16_plus_240-laion400m_e31-8fb26589.pt"),
)
