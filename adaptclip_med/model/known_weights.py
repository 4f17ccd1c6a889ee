"""Every weights file the project knows by name, as plain data (no torch, no open_clip), so
``weights status`` answers at once.  ``tests/model/test_known_weights.py`` checks the backbone
entries against open_clip's own pretrained registry, so a drift in open_clip shows up in CI.
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

#: AdaptCLIP's released adapters (GPL-2.0) on the Hugging Face hub.
RELEASE_REPO = "csgaobb/AdaptCLIP"
#: relative path in the release repo -> (short name, sha256)
RELEASE_FILES: dict[str, tuple[str, str]] = {
    "adaptclip_checkpoints/12_4_128_train_on_mvtec_3adapters_batch8/epoch_15.pth": (
        "mvtec", "90b95703879af490b6ce841e141625516db63d23fdaef4cf86731b3d7bb3b1bb"),
    "adaptclip_checkpoints/12_4_128_train_on_visa_3adapters_batch8/epoch_15.pth": (
        "visa", "777821da141eb57d159acef46868440faf773a2dd0acf5c276ec3f258c27edee"),
}


@dataclass(frozen=True)
class AdaClipRelease:
    file_name: str
    trained_on: str
    note: str


#: AdaCLIP's three releases (file names from the authors' README / app.py).  Their README's table labels
#: the two dataset-specific files "MVTec AD & ClinicDB" / "VisA & ColonDB", while the file names and
#: train/test scripts pair MVTec with ColonDB and VisA with ClinicDB (Q19); the file names are used.
ADACLIP_RELEASES: tuple[AdaClipRelease, ...] = (
    AdaClipRelease("pretrained_mvtec_colondb.pth", "MVTec AD + ColonDB", "validated on VisA"),
    AdaClipRelease("pretrained_visa_clinicdb.pth", "VisA + ClinicDB", "validated on MVTec AD"),
    AdaClipRelease("pretrained_all.pth", "all 14 datasets of the paper", "demo model"),
)
