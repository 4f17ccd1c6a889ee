"""What a method declares about its trained weights: status, fetch and import, for ``adaptclip-med weights``.

A method names its catalog on its class (``AnomalyMethod.weights_catalog``); a built-in method also
keeps it in a ``catalog.py`` module of its folder (exported as ``CATALOG``), so ``weights status``
lists every method's weights without importing torch or open_clip (the registry reads that module,
see :func:`adaptclip_med.methods.registry.weights_catalogs`).  The CLI names no method: it asks each
catalog.  This module must stay free of torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adaptclip_med.errors import AdaptClipError

if TYPE_CHECKING:
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.model.weights_store import WeightsStatus

Echo = Callable[[str], None]


class WeightsCatalog:
    """The weights of a training-free method: none of its own; its CLIP backbone is fetched by tag.

    Subclasses describe trained weights: where they are looked for (:meth:`status`), how a user
    gets missing ones (:meth:`missing_hint`), what ``weights fetch`` downloads (:meth:`fetch`) and how
    a released file is converted (:meth:`import_release`)."""

    def status(self, cache_dir: str | None) -> list["WeightsStatus"]:
        """Rows for ``weights status``: each known weights file, present or missing."""
        return []

    def missing_hint(self, rows: list["WeightsStatus"]) -> str | None:
        """One paragraph saying how to get the missing rows among ``rows`` (this method's own)."""
        return None

    def fetch(self, method: str, backbone: str, tag: str, release: str | None, cache_dir: str | None, echo: Echo) -> None:
        """``weights fetch``: the method's CLIP backbone (``backbone``/``tag``, already defaulted to the
        method's own); ``release`` names trained weights to download too, which this method has none of."""
        from adaptclip_med.model.weights_store import fetch_backbone

        if release:
            raise AdaptClipError(f"--release {release}: method '{method}' has no released weights to fetch")
        echo(f"backbone {backbone}/{tag}: {fetch_backbone(backbone, tag, cache_dir)}")

    def import_release(self, method: str, source: Path, out: Path | None, backbone: "BackboneSpec") -> str:
        """``weights import``: convert ``source`` into the project format; returns the line to print."""
        raise AdaptClipError(f"{method} is training-free: there is no release to import")
