"""AdaCLIP's weights: the authors' three releases (no stable download URL, no checksum), where they
are looked for, and the ``weights`` commands for them.  Plain data and light code (no torch at
import), so ``weights status`` answers at once; the registry reads :data:`CATALOG` from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptclip_med.methods.adaclip.releases import ADACLIP_RELEASES
from adaptclip_med.methods.catalog import Echo, WeightsCatalog
from adaptclip_med.utils.home import home

if TYPE_CHECKING:
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.model.weights_store import WeightsStatus



def adaclip_folder() -> Path:
    """Where AdaCLIP release files (``pretrained_*.pth``) and their conversions are looked for."""
    return home() / "adaclip"


def adaclip_status() -> list["WeightsStatus"]:
    """The three AdaCLIP releases (present when copied into :func:`adaclip_folder`) and any
    converted ``.safetensors`` there.  They have no stable download URL (Google-Drive links in the
    authors' README), so they are never fetched automatically."""
    from adaptclip_med.model.weights_store import WeightsStatus

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


class AdaCLIPWeights(WeightsCatalog):
    """Releases are copied in by hand (instructions instead of a download) and converted to safetensors."""

    def status(self, cache_dir: str | None) -> list["WeightsStatus"]:
        return adaclip_status()

    def missing_hint(self, rows: list["WeightsStatus"]) -> str | None:
        return adaclip_instructions()

    def fetch(self, method: str, backbone: str, tag: str, release: str | None, cache_dir: str | None, echo: Echo) -> None:
        echo(adaclip_instructions())

    def import_release(self, method: str, source: Path, out: Path | None, backbone: "BackboneSpec") -> str:
        from adaptclip_med.methods.adaclip.weights import import_release

        target = out or adaclip_folder() / f"{source.stem}.safetensors"
        return f"imported -> {import_release(source, target)} (all 38 AdaCLIP tensors checked; no published checksum)"


CATALOG = AdaCLIPWeights()
