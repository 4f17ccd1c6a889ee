"""AdaptCLIP's weights: the authors' released adapters, conversions in the project data folder, and
the ``weights`` commands for them.  Plain data and light code (no torch, no open_clip at import), so
``weights status`` answers at once; the registry reads :data:`CATALOG` from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptclip_med.errors import MissingWeightsError
from adaptclip_med.methods.adaptclip.release import RELEASE_FILES, RELEASE_REPO
from adaptclip_med.methods.catalog import Echo, WeightsCatalog
from adaptclip_med.utils.home import home

if TYPE_CHECKING:
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.model.weights_store import WeightsStatus



def converted_folder() -> Path:
    """Where ``weights import`` puts converted adapters by default."""
    return home() / "adapters"


def release_status(cache_dir: str | None = None) -> list["WeightsStatus"]:
    """The two releases in the hub cache, and every conversion in :func:`converted_folder`."""
    from huggingface_hub import try_to_load_from_cache

    from adaptclip_med.model.weights_store import WeightsStatus

    rows = []
    for rel, (short, _) in RELEASE_FILES.items():
        found = try_to_load_from_cache(RELEASE_REPO, rel, cache_dir=cache_dir)
        rows.append(WeightsStatus("adapters", f"release {short} ({rel})", Path(found) if isinstance(found, str) else None))
    converted = sorted(converted_folder().glob("*.safetensors")) if converted_folder().is_dir() else []
    rows.extend(WeightsStatus("adapters", f"converted {p.stem}", p) for p in converted)
    return rows


def fetch_release(short: str, cache_dir: str | None = None) -> Path:
    """Download a released adapter checkpoint (mvtec or visa) and verify its sha256."""
    from adaptclip_med.methods.adaptclip import release_import

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


class AdaptCLIPWeights(WeightsCatalog):
    """Released adapters are fetched from the hub (sha256 checked) and converted to safetensors."""

    def status(self, cache_dir: str | None) -> list["WeightsStatus"]:
        return release_status(cache_dir)

    def missing_hint(self, rows: list["WeightsStatus"]) -> str | None:
        return ("AdaptCLIP adapters: 'adaptclip-med weights fetch --release mvtec' (AdaptCLIP backbone + adapters), "
                "then 'adaptclip-med weights import PATH/epoch_15.pth' (PATH as printed by fetch).")

    def fetch(self, method: str, backbone: str, tag: str, release: str | None, cache_dir: str | None, echo: Echo) -> None:
        super().fetch(method, backbone, tag, None, cache_dir, echo)
        if release:
            echo(f"release {release}: {fetch_release(release, cache_dir)} (sha256 verified)")

    def import_release(self, method: str, source: Path, out: Path | None, backbone: "BackboneSpec") -> str:
        from adaptclip_med.methods.adaptclip.checkpoints import import_release

        destination = out or converted_folder() / f"{source.parent.name or source.stem}.safetensors"
        return f"imported -> {import_release(backbone, source, destination)}"


CATALOG = AdaptCLIPWeights()
