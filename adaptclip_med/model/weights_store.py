"""Where weights live on this machine, what is present, and fetching them (for users online).

AdaCLIP's releases have no stable download URL; their status is listed and instructions given.

Backbone weights are open_clip's business (hub cache); released adapter checkpoints are fetched
from the authors' Hugging Face repo into the hub cache too, and verified against the published
sha256 before use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.errors import MissingWeightsError
from adaptclip_med.model.known_weights import ADACLIP_RELEASES, KNOWN_BACKBONES, RELEASE_FILES, RELEASE_REPO
from adaptclip_med.utils.home import home

#: Backbones the authors used, with the weights tag each was used with.


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


def release_status(cache_dir: str | None = None) -> list[WeightsStatus]:
    from huggingface_hub import try_to_load_from_cache

    rows = []
    for rel, (short, _) in RELEASE_FILES.items():
        found = try_to_load_from_cache(RELEASE_REPO, rel, cache_dir=cache_dir)
        rows.append(WeightsStatus("adapters", f"release {short} ({rel})", Path(found) if isinstance(found, str) else None))
    converted = sorted(home().glob("adapters/*.safetensors")) if (home() / "adapters").is_dir() else []
    rows.extend(WeightsStatus("adapters", f"converted {p.stem}", p) for p in converted)
    return rows


def adaclip_folder() -> Path:
    """Where AdaCLIP release files (``pretrained_*.pth``) and their conversions are looked for."""
    return home() / "adaclip"


def adaclip_status() -> list[WeightsStatus]:
    """The three AdaCLIP releases (present when copied into :func:`adaclip_folder`) and any
    converted ``.safetensors`` there.  They have no stable download URL (Google-Drive links in the
    authors' README), so they are never fetched automatically."""
    folder = adaclip_folder()
    rows = []
    for release in ADACLIP_RELEASES:
        path = folder / release.file_name
        rows.append(WeightsStatus("adaclip", f"release {release.file_name} ({release.trained_on})", path if path.is_file() else None))
    converted = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    rows.extend(WeightsStatus("adaclip", f"converted {p.stem}", p) for p in converted)
    return rows


def adaclip_instructions() -> str:
    """How to obtain the AdaCLIP releases (no automatic download: no stable URL, no checksum)."""
    names = ", ".join(r.file_name for r in ADACLIP_RELEASES)
    return (f"AdaCLIP weights ({names}) are linked (Google Drive) from the README of github.com/caoyunkang/AdaCLIP; the authors "
            f"publish no checksum. Download one on a machine with internet, copy it to {adaclip_folder()}, then pass it as "
            "--adapters FILE.pth or convert it with 'adaptclip-med weights import FILE.pth --method adaclip'.")


def fetch_backbone(name: str, tag: str, cache_dir: str | None = None) -> Path:
    from adaptclip_med.model.backbone_source import pretrained_weights_file, resolve_architecture

    resolve_architecture(name)
    return pretrained_weights_file(name, tag, cache_dir, offline=False)


def fetch_release(short: str, cache_dir: str | None = None) -> Path:
    """Download a released adapter checkpoint (mvtec or visa) and verify its sha256."""
    from adaptclip_med.model import release_import

    matches = [rel for rel, (s, _) in RELEASE_FILES.items() if s == short]
    if not matches:
        raise MissingWeightsError(f"unknown release '{short}': choose mvtec or visa")
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(RELEASE_REPO, matches[0], cache_dir=cache_dir))
    except Exception as exc:  # any network/hub failure means the same thing to the user
        raise MissingWeightsError(
            f"could not download {RELEASE_REPO}/{matches[0]} ({exc.__class__.__name__}): run this on a machine with "
            "internet access and copy the file, then use 'adaptclip-med weights import FILE'") from exc
    release_import.identify_release(path)
    return path
